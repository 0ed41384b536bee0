package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Hole punching (docs/protocols/relay.md, "Direct paths"): a client that
// reaches a node through its head asks the head for a punch; the head
// tells the node the client's address as the head sees it, the node sends
// a few probes there from its listening socket (opening its NAT to the
// client), and the head answers the client with the node's address as it
// sees the node's registration. The client then dials that address over
// QUIC from the socket it reached the head from, so that its NAT presents
// the address the node's probes went to. Behind endpoint-independent NATs
// (most home routers) the dial opens a direct connection; behind a
// symmetric NAT it times out and the client stays on the relay.

// Probes a node sends for one punch: the first before it answers the
// head, the rest spaced out while the client's dial is on its way.
const (
	punchProbes   = 5
	punchInterval = 100 * time.Millisecond
)

// punchProbe is a probe's payload. Its first byte has QUIC's fixed bit
// clear, so the client's QUIC stack drops it as not QUIC instead of
// answering it.
var punchProbe = []byte{0, 'a', 'l', 'k', 'n', 'e', 't'}

// maxPunchesPerSecond bounds the punches a node answers, whichever head
// asks: each sends punchProbes small datagrams to an address the head
// names, and a node must not become a reflector.
const maxPunchesPerSecond = 16

// Bounds of a client's direct dial after a punch: three round trips to
// the head, within these.
const (
	minPunchDial = 300 * time.Millisecond
	maxPunchDial = 2 * time.Second
)

// punchMemory is how long a client dials a node through the relay alone
// after a punch to it failed (a symmetric NAT does not change by itself).
const punchMemory = 10 * time.Minute

// punchLimiter counts the punches a node answered in the current second.
type punchLimiter struct {
	mu    sync.Mutex
	start time.Time
	n     int
}

// allow reports whether one more punch fits this second.
func (l *punchLimiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= time.Second {
		l.start, l.n = now, 0
	}
	if l.n >= maxPunchesPerSecond {
		return false
	}
	l.n++
	return true
}

// punch answers a client's request for a direct path to a node: the same
// access as a connect; the node is told the client's address and sends
// its probes; the client is told the node's address. Both addresses are
// the ones the head sees, so both connections must be QUIC.
func (r *RelayServer) punch(ctx context.Context, conn Conn, s Stream, req relayRequest) {
	if req.Node == "" {
		refuseRelay(s, RelayBadRequest, "punch: name the node")
		return
	}
	from, ok := udpAddrPort(conn.Peer().RemoteAddr)
	if !ok {
		refuseRelay(s, RelayBadRequest, "punch: needs a QUIC connection to the head")
		return
	}
	w, release := r.reserve(conn, s, req)
	if w == nil {
		return
	}
	defer release()
	at, ok := udpAddrPort(w.conn.Peer().RemoteAddr)
	if !ok {
		refuseRelay(s, RelayUnavailable, "the node has no UDP address")
		return
	}
	ws, err := r.ask(ctx, w, relayRequest{Op: relayOpPunch, From: from.String()})
	if err != nil {
		r.refuseAsWorker(conn, s, err)
		return
	}
	_ = ws.Close()
	if err := writeRelayHeader(s, relayReply{OK: true, Addr: at.String()}); err != nil {
		s.Abort(CodeInternal)
		return
	}
	_ = s.Close()
}

// udpAddrPort returns a QUIC peer's address.
func udpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	u, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := u.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}

// answerPunch sends probes to the client address the head gives, from the
// endpoint's listening socket, and answers once the first is out; the
// rest follow while the client's dial travels.
func (e *Endpoint) answerPunch(s Stream, req relayRequest, logger *slog.Logger) {
	to, err := netip.ParseAddrPort(req.From)
	if err != nil || e.tr == nil {
		refuseRelay(s, RelayBadRequest, "punch: no address")
		return
	}
	if !e.punches.allow(time.Now()) {
		refuseRelay(s, RelayBusy, "too many punches")
		return
	}
	dst := net.UDPAddrFromAddrPort(to)
	if _, err := e.tr.WriteTo(punchProbe, dst); err != nil {
		logger.Debug("relay: punch probe failed", "err", err)
		refuseRelay(s, RelayUnavailable, "cannot send probes")
		return
	}
	if err := writeRelayHeader(s, relayReply{OK: true}); err != nil {
		s.Abort(CodeInternal)
		return
	}
	_ = s.Close()
	logger.Debug("relay: punching to a client")
	go func() { // ends with the probes, or at the endpoint's shutdown
		t := time.NewTicker(punchInterval)
		defer t.Stop()
		for range punchProbes - 1 {
			select {
			case <-t.C:
			case <-e.done:
				return
			}
			_, _ = e.tr.WriteTo(punchProbe, dst)
		}
	}()
}

// punchFailedLately reports whether a punch to node failed lately, so that dials go
// through the relay alone for a while.
func (d *Dialer) punchFailedLately(node NodeID, now time.Time) bool {
	d.punchMu.Lock()
	defer d.punchMu.Unlock()
	until, ok := d.noPunch[node]
	if ok && now.After(until) {
		delete(d.noPunch, node)
		return false
	}
	return ok
}

// notePunchFailed remembers that node could not be reached directly.
func (d *Dialer) notePunchFailed(node NodeID, now time.Time) {
	d.punchMu.Lock()
	defer d.punchMu.Unlock()
	if d.noPunch == nil {
		d.noPunch = make(map[NodeID]time.Time)
	}
	d.noPunch[node] = now.Add(punchMemory)
}

// dialPunched asks the head on hc for a punch to target and dials the
// address it answers from tr, the socket hc leaves from. It returns nil
// and no error when no direct path opened (the caller relays instead);
// an error only when ctx ended.
func (d *Dialer) dialPunched(ctx context.Context, hc Conn, tr *quic.Transport, head string, target NodeID, alpn string) (Conn, error) {
	q, ok := hc.(QUICConn)
	if !ok || d.RelayOnly || d.punchFailedLately(target, time.Now()) {
		return nil, nil
	}
	budget := min(max(3*q.QUIC().ConnectionStats().SmoothedRTT, minPunchDial), maxPunchDial)
	pctx, cancel := context.WithTimeout(ctx, relayHeaderTimeout)
	defer cancel()
	addr, err := d.askPunch(pctx, hc, head, target)
	var re *RelayError
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.As(err, &re) && (re.Code == RelayForbidden || re.Code == RelayNoNode):
		return nil, err // a connect would be refused the same way
	case err != nil:
		d.logger().Debug("relay: no punch", "err", err)
		return nil, nil
	}
	cfg, err := d.tlsConfig(addr, alpn, target)
	if err != nil {
		return nil, err
	}
	dctx, dcancel := context.WithTimeout(withTransport(ctx, tr), budget)
	defer dcancel()
	c, err := d.dialQUIC(dctx, addr, cfg)
	if err != nil {
		var te *quic.TransportError
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, errIdentity), errors.As(err, &te) && te.Remote:
			// The path works: the node itself refused (its key, an ALPN
			// it does not serve), as it would through the relay.
			return nil, err
		}
		d.notePunchFailed(target, time.Now())
		d.logger().Debug("relay: no direct path; relaying", "node", target.ShortString(), "err", err)
		return nil, nil
	}
	return c, nil
}

// askPunch sends a punch request for target on a new stream of hc and
// returns the node's address from the head's answer.
func (d *Dialer) askPunch(ctx context.Context, hc Conn, head string, target NodeID) (string, error) {
	s, err := hc.OpenStream(ctx)
	if err != nil {
		return "", err
	}
	defer s.Abort(CodeNoError)
	deadline, _ := ctx.Deadline()
	if err := writeRelayHeader(s, relayRequest{Op: relayOpPunch, Node: target.String()}); err != nil {
		return "", err
	}
	rep, err := readRelayReply(s, deadline, head)
	if err != nil {
		return "", err
	}
	ap, err := netip.ParseAddrPort(rep.Addr)
	if err != nil {
		return "", fmt.Errorf("core: relay reply: punch address %q: %w", Clip(rep.Addr), err)
	}
	return ap.String(), nil
}
