package core

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// DialVia connects to the node addr for alpn through the head at head
// ("[<nodeid>@]host:port", checked as any dialled node is). It asks the
// head for a relayed stream to the node and runs TLS with the node inside
// that stream, with this Dialer's key, so the head relays ciphertext it
// cannot read and the node sees this client's own identity. Beside that,
// over QUIC and unless [Dialer.RelayOnly], it asks the head for a punch
// and dials the node directly from the same socket; when that opens
// within three round trips to the head (NATs that map
// endpoint-independently), the direct QUIC connection is returned, its
// Peer().RemoteAddr the node's address, and the relayed one closed. After
// a failed punch, dials to that node skip the punch for 10 minutes. addr
// is a bare NodeID, or "[<nodeid>@]host:port" pinned or recorded in
// [KnownNodes] (only its key is used): a dial through a head never trusts
// a key on first use. A relayed Conn is single-stream (as over TCP+TLS),
// its Peer().RemoteAddr a [RelayAddr]; closing it closes the head
// connection too (each relayed dial has its own). A refusal by the head
// is a [*RelayError].
func (d *Dialer) DialVia(ctx context.Context, head, addr, alpn string) (Conn, error) {
	target, err := d.relayTarget(addr)
	if err != nil {
		return nil, err
	}
	// One socket for the head and, after a punch, the node: the node's
	// probes go to the address the head saw it at.
	sock, err := newSharedSocket()
	if err != nil {
		return nil, err
	}
	defer sock.release()
	hc, err := d.dialDirect(withTransport(ctx, sock.tr), head, RelayALPN)
	if err != nil {
		return nil, fmt.Errorf("core: relay via %s: %w", head, err)
	}
	sock.hold(hc)
	closeHead := sync.OnceFunc(func() { _ = hc.CloseWithError(CodeNoError, "") })
	// The punch runs beside the relayed connect: the first to connect
	// wins, except that a ready relayed connection waits a grace of two
	// round trips to the head for the direct path; where the punch fails
	// (a symmetric NAT) the relay is ready by then.
	pctx, stopPunch := context.WithCancel(ctx)
	defer stopPunch()
	punched := make(chan Conn, 1)
	go func() {
		c, err := d.dialPunched(pctx, hc, sock.tr, head, target, alpn)
		if err != nil && pctx.Err() == nil {
			d.logger().Debug("relay: punch failed", "err", err)
		}
		punched <- c
	}()
	rctx, stopRelay := context.WithCancel(ctx)
	defer stopRelay()
	type result struct {
		c   Conn
		err error
	}
	relayed := make(chan result, 1)
	go func() {
		c, err := d.relayOver(rctx, hc, head, target, alpn, closeHead)
		relayed <- result{c, err}
	}()
	// goDirect keeps the direct connection; the relayed one, ready (got)
	// or still under way, is closed.
	goDirect := func(direct Conn, got *result) (Conn, error) {
		stopRelay()
		switch {
		case got == nil:
			go func() { // the relay loses, even if it connects now
				if r := <-relayed; r.c != nil {
					_ = r.c.CloseWithError(CodeNoError, "")
				}
			}()
		case got.c != nil:
			// A clean close lingers for the node's end (a round trip
			// through the head): not on the way of the direct path.
			go got.c.CloseWithError(CodeNoError, "")
		}
		closeHead()
		sock.hold(direct)
		return direct, nil
	}
	var r result
	select {
	case direct := <-punched:
		if direct != nil {
			return goDirect(direct, nil)
		}
		r = <-relayed
	case r = <-relayed:
		if r.err != nil {
			if direct := <-punched; direct != nil {
				return goDirect(direct, &r)
			}
			break
		}
		grace := time.NewTimer(punchGrace(hc))
		defer grace.Stop()
		select {
		case direct := <-punched:
			if direct != nil {
				return goDirect(direct, &r)
			}
		case <-grace.C:
			stopPunch()
			d.notePunchFailed(target, time.Now())
			go func() { // a direct path that opens now comes too late
				if c := <-punched; c != nil {
					_ = c.CloseWithError(CodeNoError, "")
				}
			}()
		}
	}
	if r.err != nil {
		closeHead()
		return nil, r.err
	}
	return r.c, nil
}

// minPunchGrace is the least a ready relayed connection waits for a punch
// still under way.
const minPunchGrace = 100 * time.Millisecond

// punchGrace is how long a ready relayed connection waits for the punch
// beside it: two round trips to the head, at least minPunchGrace. The
// punch's answer came about when the relay's did, and its direct
// handshake takes about one round trip, as the TLS inside the relay did.
func punchGrace(hc Conn) time.Duration {
	q, ok := hc.(QUICConn)
	if !ok {
		return 0
	}
	return max(2*q.QUIC().ConnectionStats().SmoothedRTT, minPunchGrace)
}

// relayOver asks the head on hc for a relayed stream to target and runs
// TLS with it inside; the Conn it returns closes the head connection
// with closeHead when it closes. On an error it leaves hc open.
func (d *Dialer) relayOver(ctx context.Context, hc Conn, head string, target NodeID, alpn string, closeHead func()) (Conn, error) {
	s, err := hc.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("core: relay via %s: %w", head, err)
	}
	deadline := time.Now().Add(relayHeaderTimeout + DefaultRelayAcceptTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	err = writeRelayHeader(s, relayRequest{Op: relayOpConnect, Node: target.String(), ALPN: alpn})
	if err == nil {
		_, err = readRelayReply(s, deadline, head)
	}
	if err != nil {
		s.Abort(CodeNoError)
		return nil, err
	}
	label := "relay:" + head
	cfg, err := d.tlsConfig(label, alpn, target)
	if err != nil {
		s.Abort(CodeNoError)
		return nil, err
	}
	var up atomic.Bool // the head connection is the relayed Conn's once it is up
	nc := &relayNetConn{Stream: s, local: RelayAddr{}, remote: RelayAddr{Head: hc.Peer().RemoteAddr}, onClose: func() {
		if up.Load() {
			closeHead()
		}
	}}
	c, err := d.clientTLS(ctx, nc, withSessions(cfg, "relay"), fmt.Sprintf("%s via %s", target.ShortString(), head))
	if err != nil {
		return nil, err
	}
	up.Store(true)
	return c, nil
}

// sharedSocket is a UDP socket and its QUIC transport that several of a
// dial's connections use; it closes when the last of them ended and the
// dial released it.
type sharedSocket struct {
	udp *net.UDPConn
	tr  *quic.Transport

	mu   sync.Mutex
	refs int
}

// newSharedSocket opens a socket held by the dial until release.
func newSharedSocket() (*sharedSocket, error) {
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, fmt.Errorf("core: udp socket: %w", err)
	}
	return &sharedSocket{udp: udp, tr: &quic.Transport{Conn: &roamingUDP{UDPConn: udp}}, refs: 1}, nil
}

// hold keeps the socket open until c ends.
func (s *sharedSocket) hold(c Conn) {
	if _, ok := c.(QUICConn); !ok {
		return // a TCP connection does not use it
	}
	s.mu.Lock()
	s.refs++
	s.mu.Unlock()
	context.AfterFunc(c.Context(), s.release)
}

// release drops one hold; the last closes the socket.
func (s *sharedSocket) release() {
	s.mu.Lock()
	s.refs--
	last := s.refs == 0
	s.mu.Unlock()
	if last {
		_ = s.tr.Close()
		_ = s.udp.Close()
	}
}

// relayTarget returns the key a relayed dial to addr checks: the NodeID
// addr is or pins, or the one recorded for it in KnownNodes.
func (d *Dialer) relayTarget(addr string) (NodeID, error) {
	if id, err := ParseNodeID(addr); err == nil {
		return id, nil
	}
	pin, hostport, err := ParseAddr(addr)
	if err != nil {
		return NodeID{}, err
	}
	if pin.IsZero() && d.KnownNodes != nil {
		if pin, err = d.KnownNodes.known(hostport); err != nil {
			return NodeID{}, err
		}
	}
	if pin.IsZero() {
		return NodeID{}, fmt.Errorf("core: a relayed dial needs the node's key, and %q pins none: dial its NodeID", Clip(addr))
	}
	return pin, nil
}
