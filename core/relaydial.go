package core

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// DialVia connects to the node addr for alpn through the head at head
// ("[<nodeid>@]host:port", checked as any dialled node is): it dials the
// head with [RelayALPN], asks it for a relayed stream to the node, and
// runs TLS with the node inside that stream, with this Dialer's key, so
// the head relays ciphertext it cannot read and the node sees this
// client's own identity. addr is a bare NodeID, or "[<nodeid>@]host:port"
// pinned or recorded in [KnownNodes] (only its key is used): a relayed dial
// never trusts a key on first use. The returned Conn is single-stream (as
// over TCP+TLS), its Peer().RemoteAddr a [RelayAddr]; closing it closes
// the head connection too (each relayed dial has its own). A refusal by
// the head is a [*RelayError].
func (d *Dialer) DialVia(ctx context.Context, head, addr, alpn string) (Conn, error) {
	target, err := d.relayTarget(addr)
	if err != nil {
		return nil, err
	}
	hc, err := d.dialDirect(ctx, head, RelayALPN)
	if err != nil {
		return nil, fmt.Errorf("core: relay via %s: %w", head, err)
	}
	closeHead := sync.OnceFunc(func() { _ = hc.CloseWithError(CodeNoError, "") })
	s, err := hc.OpenStream(ctx)
	if err != nil {
		closeHead()
		return nil, fmt.Errorf("core: relay via %s: %w", head, err)
	}
	deadline := time.Now().Add(relayHeaderTimeout + DefaultRelayAcceptTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	err = writeRelayHeader(s, relayRequest{Op: relayOpConnect, Node: target.String(), ALPN: alpn})
	if err == nil {
		err = readRelayReply(s, deadline, head)
	}
	if err != nil {
		s.Abort(CodeNoError)
		closeHead()
		return nil, err
	}
	label := "relay:" + head
	cfg, err := d.tlsConfig(label, alpn, target)
	if err != nil {
		s.Abort(CodeNoError)
		closeHead()
		return nil, err
	}
	nc := &relayNetConn{Stream: s, local: RelayAddr{}, remote: RelayAddr{Head: hc.Peer().RemoteAddr}, onClose: closeHead}
	c, err := d.clientTLS(ctx, nc, withSessions(cfg, "relay"), fmt.Sprintf("%s via %s", target.ShortString(), head))
	if err != nil {
		return nil, err
	}
	return c, nil
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
