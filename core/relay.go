package core

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
	"unicode"
)

// RelayALPN is the relay protocol a head serves: a worker that joined the
// head registers there, and clients reach it through the head on any ALPN,
// running their own TLS with it inside the relayed stream
// (docs/protocols/relay.md).
const RelayALPN = "alknet/relay"

// RelayScope lets an identity open relayed connections through a head to
// every attached node; "relay:<nodeid>" lets it reach that node only.
const RelayScope = "relay"

// Relay operations: the op of a request's header frame.
const (
	relayOpListen  = "listen"  // worker → head: register this connection
	relayOpConnect = "connect" // client → head: a relayed stream to node, for alpn
	relayOpAccept  = "accept"  // head → worker: a relayed stream for alpn
)

// relayMaxHeader bounds a relay header frame, request or reply.
const relayMaxHeader = 1024

// relayMaxALPN bounds an ALPN in a header, as TLS does (RFC 7301).
const relayMaxALPN = 255

// relayHeaderTimeout bounds the wait for a header frame that a side owes
// the other (the request once a stream opens, the reply to it).
const relayHeaderTimeout = 10 * time.Second

// relayRequest is the header frame that opens a relay stream. Unknown
// fields are ignored, so that later versions can add some.
type relayRequest struct {
	Op string `json:"op"`
	// Node is the NodeID a connect asks for.
	Node string `json:"node,omitempty"`
	// ALPN is the protocol the relayed stream carries (connect, accept).
	ALPN string `json:"alpn,omitempty"`
	// From is the client's address as the head saw it (accept; for logs).
	From string `json:"from,omitempty"`
	// Client is the client's NodeID, empty for an anonymous client
	// (accept; the worker learns the real one from its own handshake).
	Client string `json:"client,omitempty"`
}

// relayReply answers a request: ok, or an error code and reason.
type relayReply struct {
	OK     bool      `json:"ok,omitempty"`
	Error  RelayCode `json:"error,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// RelayCode is why a relay request was refused.
type RelayCode string

// Relay error codes (docs/protocols/relay.md).
const (
	// RelayBadRequest: the header was not a valid request.
	RelayBadRequest RelayCode = "bad-request"
	// RelayForbidden: the identity may not do this (no scope).
	RelayForbidden RelayCode = "forbidden"
	// RelayNoNode: no node with that NodeID is attached to the head.
	RelayNoNode RelayCode = "no-node"
	// RelayBusy: a limit of the head (relayed streams to that node) is
	// reached; try later.
	RelayBusy RelayCode = "busy"
	// RelayUnavailable: the node did not answer the head in time.
	RelayUnavailable RelayCode = "unavailable"
	// RelayRefused: the node refused the relayed stream (no such ALPN).
	RelayRefused RelayCode = "refused"
)

func (c RelayCode) String() string { return string(c) }

// RelayError is a relay request refused by the other side: by the head
// for a connect or listen, by the worker for an accept.
type RelayError struct {
	Code   RelayCode
	Reason string
	// Head is the head's address as dialled ("" on the head's side).
	Head string
}

func (e *RelayError) Error() string {
	by := "relay"
	if e.Head != "" {
		by = "relay via " + e.Head
	}
	if e.Reason == "" {
		return fmt.Sprintf("core: %s: %s", by, e.Code)
	}
	return fmt.Sprintf("core: %s: %s: %s", by, e.Code, e.Reason)
}

// errBadRelayHeader marks a header frame that does not decode.
var errBadRelayHeader = errors.New("bad relay header")

// decodeRelayRequest decodes and checks a request header.
func decodeRelayRequest(b []byte) (relayRequest, error) {
	var r relayRequest
	if err := decodeRelayJSON(b, &r); err != nil {
		return relayRequest{}, err
	}
	switch r.Op {
	case relayOpListen:
	case relayOpConnect:
		if _, err := ParseNodeID(r.Node); err != nil {
			return relayRequest{}, fmt.Errorf("%w: node: %w", errBadRelayHeader, err)
		}
		if err := checkRelayALPN(r.ALPN); err != nil {
			return relayRequest{}, err
		}
	case relayOpAccept:
		if err := checkRelayALPN(r.ALPN); err != nil {
			return relayRequest{}, err
		}
		if r.Client != "" {
			if _, err := ParseNodeID(r.Client); err != nil {
				return relayRequest{}, fmt.Errorf("%w: client: %w", errBadRelayHeader, err)
			}
		}
		if len(r.From) > 64 || !printable(r.From) {
			return relayRequest{}, fmt.Errorf("%w: from: not an address", errBadRelayHeader)
		}
	case "":
		return relayRequest{}, fmt.Errorf("%w: no op", errBadRelayHeader)
	default:
		return relayRequest{}, fmt.Errorf("%w: unknown op %q", errBadRelayHeader, Clip(r.Op))
	}
	return r, nil
}

// decodeRelayReply decodes a reply header.
func decodeRelayReply(b []byte) (relayReply, error) {
	var r relayReply
	if err := decodeRelayJSON(b, &r); err != nil {
		return relayReply{}, err
	}
	if r.OK == (r.Error != "") {
		return relayReply{}, fmt.Errorf("%w: a reply is either ok or an error", errBadRelayHeader)
	}
	if len(r.Error) > 32 || !printable(string(r.Error)) || !printable(r.Reason) {
		return relayReply{}, fmt.Errorf("%w: error: not printable", errBadRelayHeader)
	}
	return r, nil
}

// decodeRelayJSON decodes one JSON object, and nothing after it.
func decodeRelayJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", errBadRelayHeader, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the object", errBadRelayHeader)
	}
	return nil
}

func checkRelayALPN(alpn string) error {
	if alpn == "" || len(alpn) > relayMaxALPN || !printable(alpn) {
		return fmt.Errorf("%w: alpn: want 1..%d printable bytes", errBadRelayHeader, relayMaxALPN)
	}
	return nil
}

// printable reports whether s holds no control characters.
func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// writeRelayHeader writes v as one header frame.
func writeRelayHeader(s Stream, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > relayMaxHeader {
		return fmt.Errorf("core: relay header of %d bytes, limit %d", len(b), relayMaxHeader)
	}
	_ = s.SetWriteDeadline(time.Now().Add(relayHeaderTimeout))
	defer s.SetWriteDeadline(time.Time{})
	_, err = s.Write(AppendFrame(nil, b))
	return err
}

// readRelayFrame reads one header frame before deadline, under l's budget.
func readRelayFrame(s Stream, l FrameLimits, deadline time.Time) ([]byte, error) {
	_ = s.SetReadDeadline(deadline)
	defer s.SetReadDeadline(time.Time{})
	return l.ReadFrame(s, relayMaxHeader)
}

// readRelayReply reads a reply and turns a refusal into a [*RelayError].
func readRelayReply(s Stream, deadline time.Time, head string) error {
	b, err := readRelayFrame(s, FrameLimits{}, deadline)
	if err != nil {
		return fmt.Errorf("core: relay reply: %w", err)
	}
	r, err := decodeRelayReply(b)
	if err != nil {
		return fmt.Errorf("core: relay reply: %w", err)
	}
	if !r.OK {
		return &RelayError{Code: r.Error, Reason: r.Reason, Head: head}
	}
	return nil
}

// RelayAddr is the remote address of a relayed connection: the head it
// goes through. Its String is "relay:<head address>".
type RelayAddr struct {
	// Head is the head's address.
	Head net.Addr
	// From is, on the worker's side, the client's address as the head saw
	// it (information only: the head says so); empty on the client's.
	From string
}

// Network implements net.Addr.
func (a RelayAddr) Network() string { return "relay" }

func (a RelayAddr) String() string {
	if a.Head == nil {
		return "relay:-"
	}
	return "relay:" + a.Head.String()
}

// relayNetConn is a relayed [Stream] as a net.Conn, for the TLS that runs
// inside it. Abort reaches the stream (tlsStream.Abort looks for it), and
// onClose, if set, runs once the stream is closed or aborted.
type relayNetConn struct {
	Stream
	local, remote net.Addr
	onClose       func()
}

func (c *relayNetConn) LocalAddr() net.Addr  { return c.local }
func (c *relayNetConn) RemoteAddr() net.Addr { return c.remote }

func (c *relayNetConn) Close() error {
	err := c.Stream.Close()
	if c.onClose != nil {
		c.onClose()
	}
	return err
}

func (c *relayNetConn) Abort(code ErrorCode) {
	c.Stream.Abort(code)
	if c.onClose != nil {
		c.onClose()
	}
}
