package wan

import (
	"context"
	"crypto/tls"
	"encoding/binary"

	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
)

// directionSwitchResult is the send-path reproduction of issue 17 on bare
// quic-go: the node's side (B) sends bulk data on a fresh connection, and
// on a connection over which it has just received as much.
type directionSwitchResult struct {
	// up is the client's upload (A to B) on the reused connection, and
	// downAfterUp the download (B to A) that follows on it; freshDown is
	// the same download on a connection of its own. Bytes per second.
	up, downAfterUp, freshDown float64
}

// directionSwitchOptions configures [measureDirectionSwitch].
type directionSwitchOptions struct {
	// bytes moved by each transfer; zero means 32 MiB.
	bytes int64
	// config is the quic-go configuration of both ends; nil means
	// quic-go's defaults (with qlog tracing when QLOGDIR is set).
	config *quic.Config
}

// measureDirectionSwitch runs a bare quic-go server in l's namespace B
// and a client in A: a fresh connection downloads opt.Bytes; another
// uploads opt.Bytes and then downloads as much on the same connection.
// With QLOGDIR set, quic-go writes both ends' qlogs there.
func measureDirectionSwitch(ctx context.Context, l *netem.Link, opt directionSwitchOptions) (directionSwitchResult, error) {
	var res directionSwitchResult
	if opt.bytes == 0 {
		opt.bytes = 32 << 20
	}
	conf := opt.config
	if conf == nil {
		conf = &quic.Config{Tracer: qlog.DefaultConnectionTracer}
	}
	dial, stop, err := startSwitchPair(ctx, l, "alknet-bench/switch", conf)
	if err != nil {
		return res, err
	}
	defer stop()
	fresh, err := dial()
	if err != nil {
		return res, fmt.Errorf("bench: direction switch: dial: %w", err)
	}
	res.freshDown, err = switchTransfer(ctx, fresh, 'd', opt.bytes)
	_ = fresh.CloseWithError(0, "")
	if err != nil {
		return res, err
	}
	reused, err := dial()
	if err != nil {
		return res, fmt.Errorf("bench: direction switch: dial: %w", err)
	}
	defer reused.CloseWithError(0, "")
	if res.up, err = switchTransfer(ctx, reused, 'u', opt.bytes); err != nil {
		return res, err
	}
	res.downAfterUp, err = switchTransfer(ctx, reused, 'd', opt.bytes)
	return res, err
}

// startSwitchPair starts a bare quic-go server with conf in l's namespace
// B, serving the switch protocol (serveSwitch) on alpn, and a client
// transport in A; dial opens a connection from A to it, stop closes both
// ends.
func startSwitchPair(ctx context.Context, l *netem.Link, alpn string, conf *quic.Config) (dial func() (*quic.Conn, error), stop func(), err error) {
	var undo []func()
	stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()
	cert, pool, err := harness.SelfSigned()
	if err != nil {
		return nil, nil, err
	}
	srvConn, err := listenUDPIn(l, netem.SideB)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() { srvConn.Close() })
	cliConn, err := listenUDPIn(l, netem.SideA)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() { cliConn.Close() })
	srvTr := &quic.Transport{Conn: srvConn}
	undo = append(undo, func() { srvTr.Close() })
	ln, err := srvTr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{alpn}}, conf)
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() { ln.Close() })
	var wg sync.WaitGroup
	sctx, cancel := context.WithCancel(ctx)
	wg.Go(func() { serveSwitch(sctx, ln) })
	undo = append(undo, func() { cancel(); wg.Wait() })
	cliTr := &quic.Transport{Conn: cliConn}
	undo = append(undo, func() { cliTr.Close() })
	return func() (*quic.Conn, error) {
		return cliTr.Dial(ctx, srvConn.LocalAddr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{alpn}}, conf)
	}, stop, nil
}

// listenUDPIn opens a UDP socket on l's address in side's namespace.
func listenUDPIn(l *netem.Link, side netem.Side) (c *net.UDPConn, err error) {
	err = l.Do(side, func() error {
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.Addr(side), 0)))
		return err
	})
	return c, err
}

// oncePerLink wraps measure so that the transfers sharing one measurement
// run it once per link: the first caller measures, the others reuse what
// it found (a failure is measured again).
func oncePerLink[R any](measure func(context.Context, *netem.Link) (R, error)) func(context.Context, *netem.Link) (R, error) {
	var mu sync.Mutex
	measured := map[*netem.Link]R{}
	return func(ctx context.Context, l *netem.Link) (R, error) {
		mu.Lock()
		defer mu.Unlock()
		if r, ok := measured[l]; ok {
			return r, nil
		}
		r, err := measure(ctx, l)
		if err == nil {
			measured[l] = r
		}
		return r, err
	}
}

// switchTransfer runs one transfer on a new stream of c: 'u' sends n bytes
// to the server and waits for its one-byte receipt, 'd' reads n bytes from
// it. It returns the goodput in bytes per second.
func switchTransfer(ctx context.Context, c *quic.Conn, op byte, n int64) (float64, error) {
	st, err := c.OpenStreamSync(ctx)
	if err != nil {
		return 0, err
	}
	defer st.CancelRead(0)
	hdr := binary.BigEndian.AppendUint64([]byte{op}, uint64(n))
	start := time.Now()
	if _, err := st.Write(hdr); err != nil {
		return 0, err
	}
	switch op {
	case 'u':
		if _, err := io.CopyN(st, zeroReader{}, n); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(st, make([]byte, 1)); err != nil {
			return 0, fmt.Errorf("bench: upload receipt: %w", err)
		}
	case 'd':
		if got, err := io.Copy(io.Discard, st); err != nil || got != n {
			return 0, fmt.Errorf("bench: download: %d of %d bytes: %v", got, n, err)
		}
	}
	_ = st.Close()
	return float64(n) / time.Since(start).Seconds(), nil
}

// serveSwitch answers switchTransfer's requests until ctx ends.
func serveSwitch(ctx context.Context, ln *quic.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		wg.Go(func() {
			for {
				st, err := c.AcceptStream(ctx)
				if err != nil {
					return
				}
				wg.Go(func() {
					defer st.Close()
					var hdr [9]byte
					if _, err := io.ReadFull(st, hdr[:]); err != nil {
						return
					}
					n := int64(binary.BigEndian.Uint64(hdr[1:]))
					switch hdr[0] {
					case 'u':
						if got, _ := io.Copy(io.Discard, io.LimitReader(st, n)); got == n {
							_, _ = st.Write([]byte{1})
						}
					case 'd':
						_, _ = io.CopyN(st, zeroReader{}, n)
					}
				})
			}
		})
	}
}

// zeroReader yields zeros without end.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// Names of the send-path reproduction's transfers in the wan scenario.
const (
	transferQUICDownFresh    = "quic-down-fresh"
	transferQUICDownAfterUp  = "quic-down-after-up"
	directionSwitchGoalRatio = 0.9
)

// DirectionSwitchTransfers are the send-path reproduction as wan-scenario
// transfers: bare quic-go's download on a fresh connection, and the one
// that follows an upload on the same connection, measured together once
// per link ([measureDirectionSwitch] with bytes per transfer).
func DirectionSwitchTransfers(bytes int64) []WANTransfer {
	measure := oncePerLink(func(ctx context.Context, l *netem.Link) (directionSwitchResult, error) {
		return measureDirectionSwitch(ctx, l, directionSwitchOptions{bytes: bytes})
	})
	return []WANTransfer{
		{name: transferQUICDownFresh, run: func(ctx context.Context, l *netem.Link) (float64, error) {
			r, err := measure(ctx, l)
			return r.freshDown, err
		}},
		{name: transferQUICDownAfterUp, run: func(ctx context.Context, l *netem.Link) (float64, error) {
			r, err := measure(ctx, l)
			return r.downAfterUp, err
		}},
	}
}

// writeDirectionSwitchGoals prints, per profile that ran them, issue 17's
// send-path goals: on bare quic-go a download after an upload on one
// connection runs within 10 % of one on a fresh connection, and `alknet
// perf`'s download within 10 % of its upload on the same stream.
func writeDirectionSwitchGoals(w io.Writer, results []WANResult) {
	for _, r := range results {
		rates := map[string]float64{}
		for _, t := range r.transfers {
			if t.err == nil {
				rates[t.name] = t.bytesPerSec
			}
		}
		after, ok1 := rates[transferQUICDownAfterUp]
		fresh, ok2 := rates[transferQUICDownFresh]
		if ok1 && ok2 && fresh > 0 {
			harness.WriteGoal(w, "download-after-upload", r.profile.Name, after/fresh, ">=", directionSwitchGoalRatio)
		}
		down, ok1 := rates["alknet-perf-down-after-up"]
		up, ok2 := rates["alknet-perf-up"]
		if ok1 && ok2 && up > 0 {
			harness.WriteGoal(w, "alknet-perf-download-after-upload", r.profile.Name, down/up, ">=", directionSwitchGoalRatio)
		}
	}
}
