package scalebench

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// ConnsOptions configures [MeasureConns].
type ConnsOptions struct {
	// Binary is the alknet executable; required.
	Binary string
	// Network is QUIC or TCP (TCP+TLS).
	Network core.Network
	// N is how many connections to open.
	N int
	// Concurrency bounds the dials in flight; zero means 32.
	Concurrency int
	// Deadline bounds the dials; zero means 5 minutes. Connections not
	// open by then are not waited for (Cut).
	Deadline time.Duration
	// Idle is how long the connections idle before the memory is read; zero
	// means 5 s.
	Idle time.Duration
	// Progress, if set, receives a line of progress now and then.
	Progress func(string)
	// limit, if set, is the node's max_conns and max_conns_per_ip
	// instead of N + connSlack (tests of refusals).
	limit int
}

// ConnsResult is the node's memory with N idle connections.
type ConnsResult struct {
	Network core.Network
	// Want is the number of connections asked for, Open how many the node
	// accepted, Alive how many were still open after the idle time.
	Want, Open, Alive int
	// Refused counts the dials that failed; FirstErr is the first failure.
	Refused  int
	FirstErr error
	// Limit is the node's max_conns and max_conns_per_ip.
	Limit int
	// Before and After are the node's VmRSS without connections and after
	// the idle time, in bytes.
	Before, After int64
	// Dial is how long opening the connections took; Cut says the dials
	// were stopped at the deadline before all were tried.
	Dial time.Duration
	Cut  bool
}

// PerConn returns (After - Before) / Open, in bytes.
func (r ConnsResult) PerConn() float64 {
	if r.Open == 0 {
		return 0
	}
	return float64(r.After-r.Before) / float64(r.Open)
}

// connSlack is the room left in max_conns above the measured connections.
const connSlack = 64

// MeasureConns starts `alknet serve` with limits that allow opts.N
// connections from the loopback, reads its RSS, opens opts.N connections
// on alknet/call as one known peer (QUIC: all on one UDP socket; TCP+TLS:
// one socket each, the bench's RLIMIT_NOFILE raised), lets them idle (only
// keep-alives flow), and reads its RSS again. A dial the node refuses is
// counted, not an error; the run ends at opts.Deadline whatever happened.
func MeasureConns(ctx context.Context, opts ConnsOptions) (ConnsResult, error) {
	res := ConnsResult{Network: opts.Network, Want: opts.N}
	if opts.N < 1 {
		return res, fmt.Errorf("bench: scale: %d connections: want at least 1", opts.N)
	}
	if opts.Network != core.NetworkQUIC && opts.Network != core.NetworkTCP {
		return res, fmt.Errorf("bench: scale: network %q: want quic or tcp", opts.Network)
	}
	conc := cmpOr(opts.Concurrency, 32)
	deadline := cmpOr(opts.Deadline, 5*time.Minute)
	idle := cmpOr(opts.Idle, 5*time.Second)
	ctx, cancel := context.WithTimeout(ctx, deadline+idle+time.Minute)
	defer cancel()
	dialCtx, dialCancel := context.WithTimeout(ctx, deadline)
	defer dialCancel()
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	if opts.Network == core.NetworkTCP {
		soft, _, err := core.RaiseFileLimit()
		if err == nil && soft < uint64(opts.N+256) {
			err = fmt.Errorf("RLIMIT_NOFILE is %d", soft)
		}
		if err != nil {
			return res, fmt.Errorf("bench: scale: %d TCP connections need as many file descriptors: %w", opts.N, err)
		}
	}

	_, key, _ := ed25519.GenerateKey(nil)
	id, _ := core.NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	limit := cmpOr(opts.limit, opts.N+connSlack)
	res.Limit = limit
	config := fmt.Sprintf("[limits]\nmax_conns = %d\nmax_conns_per_ip = %d\n\n[[peers]]\nid = \"bench\"\nkeys = [%q]\n", limit, limit, id.String())
	n, err := startNode(ctx, opts.Binary, "", config)
	if err != nil {
		return res, err
	}
	// Let the node finish starting (its first GC cycles) before the baseline.
	if err := harness.Sleep(ctx, 2*time.Second); err != nil {
		return res, n.stopWith(err)
	}
	if res.Before, err = n.rss(); err != nil {
		return res, n.stopWith(err)
	}

	d, err := newConnDialer(opts.Network, key, n)
	if err != nil {
		return res, n.stopWith(err)
	}
	start := time.Now()
	var (
		mu       sync.Mutex
		conns    []idleConn
		refused  atomic.Int64
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(opts.N) && dialCtx.Err() == nil {
				c, err := d.dial(dialCtx)
				mu.Lock()
				if err != nil && dialCtx.Err() == nil {
					refused.Add(1)
					if firstErr == nil {
						firstErr = err
					}
				} else if err == nil {
					conns = append(conns, c)
				}
				done := len(conns)
				mu.Unlock()
				if err == nil && done%1000 == 0 {
					progress(fmt.Sprintf("scale conns %s: %d of %d open after %v", opts.Network, done, opts.N, time.Since(start).Round(time.Second)))
				}
			}
		})
	}
	wg.Wait()
	res.Dial = time.Since(start)
	res.Open, res.Refused, res.FirstErr = len(conns), int(refused.Load()), firstErr
	res.Cut = dialCtx.Err() != nil && res.Open+res.Refused < opts.N
	progress(fmt.Sprintf("scale conns %s: %d open, %d refused in %v; idling %v", opts.Network, res.Open, res.Refused, res.Dial.Round(time.Millisecond), idle))

	err = harness.Sleep(ctx, idle)
	if err == nil {
		res.After, err = n.rss()
	}
	for _, c := range conns {
		if c.alive() {
			res.Alive++
		}
	}
	for _, c := range conns {
		c.close()
	}
	d.close()
	if err != nil {
		return res, n.stopWith(err)
	}
	return res, n.stop()
}

// idleConn is one held connection.
type idleConn interface {
	alive() bool
	close()
}

// connDialer opens connections to the node as one known peer.
type connDialer struct {
	network core.Network
	node    *node
	// QUIC: every connection on one transport.
	tr    *quic.Transport
	udp   *net.UDPConn
	raddr *net.UDPAddr
	tls   *tls.Config
	qcfg  *quic.Config
	// TCP: core's dialer.
	core *core.Dialer
}

func newConnDialer(network core.Network, key ed25519.PrivateKey, n *node) (*connDialer, error) {
	d := &connDialer{network: network, node: n}
	if network == core.NetworkTCP {
		d.core = &core.Dialer{Key: key, Network: core.NetworkTCP, Logger: harness.Discard()}
		return d, nil
	}
	cert, err := core.NodeCertificate(key)
	if err != nil {
		return nil, err
	}
	if d.raddr, err = net.ResolveUDPAddr("udp", n.hostport); err != nil {
		return nil, err
	}
	if d.udp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		return nil, err
	}
	_ = d.udp.SetReadBuffer(7 << 20)
	_ = d.udp.SetWriteBuffer(7 << 20)
	d.tr = &quic.Transport{Conn: d.udp}
	want := n.id
	d.tls = &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{call.ALPN},
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // the node's key is checked below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("node presented no certificate")
			}
			got, err := core.NodeIDFromCertificate(cs.PeerCertificates[0].Raw)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("node presented key %s, not %s", got, want)
			}
			return nil
		},
	}
	// As core's dialer: a 15 s keep-alive.
	d.qcfg = &quic.Config{KeepAlivePeriod: 15 * time.Second, HandshakeIdleTimeout: 20 * time.Second}
	return d, nil
}

// dialTimeout bounds one dial.
const dialTimeout = 30 * time.Second

func (d *connDialer) dial(ctx context.Context) (idleConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if d.network == core.NetworkTCP {
		c, err := d.core.Dial(ctx, d.node.addr, call.ALPN)
		if err != nil {
			return nil, err
		}
		return coreConn{c}, nil
	}
	qc, err := d.tr.Dial(ctx, d.raddr, d.tls, d.qcfg)
	if err != nil {
		return nil, fmt.Errorf("quic dial %s: %w", d.node.hostport, err)
	}
	return quicConn{qc}, nil
}

func (d *connDialer) close() {
	if d.tr != nil {
		_ = d.tr.Close()
		_ = d.udp.Close()
	}
}

type coreConn struct{ c core.Conn }

func (c coreConn) alive() bool { return c.c.Context().Err() == nil }
func (c coreConn) close()      { _ = c.c.CloseWithError(core.CodeNoError, "") }

type quicConn struct{ c *quic.Conn }

func (c quicConn) alive() bool { return c.c.Context().Err() == nil }
func (c quicConn) close()      { _ = c.c.CloseWithError(0, "") }

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
