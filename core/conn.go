package core

import (
	"context"
	"io"
	"log/slog"
	"net"
	"time"
)

// Handler serves the connections of one or more ALPNs. Build the handlers a
// node runs into a [Router].
type Handler interface {
	// ALPNs returns the protocols the handler claims. It is called once, when
	// the router is built; the list must not be empty.
	ALPNs() []string
	// Serve serves one connection and returns when it is done with it. It
	// runs in its own goroutine, one per connection.
	//
	// ctx ends when the endpoint shuts down: the handler then takes no new
	// streams, finishes the work in flight and returns. The connection's own
	// end is conn.Context(). Serve must not return while goroutines it started
	// still use the connection.
	//
	// Core owns the connection: it closes it when Serve returns, so a handler
	// closes it only to send a code ([Conn.CloseWithError]). A returned error
	// is logged and closes the connection with [CodeInternal]; it never stops
	// the endpoint, and neither does a panic, which core recovers and logs.
	Serve(ctx context.Context, conn Conn) error
}

// Shutdowner is implemented by handlers with work of their own to finish
// when the endpoint stops, beyond their connections: a server that tracks
// requests across connections, as net/http's does. [Endpoint.Shutdown]
// calls Shutdown once on each, concurrently, as soon as it stops accepting,
// and counts it in the drain: ctx ends when the drain's time is up, and the
// remaining connections are closed only after every Shutdown returned or
// that time passed.
type Shutdowner interface {
	Shutdown(ctx context.Context) error
}

// Conn is a connection routed to a handler: a QUIC connection with many
// streams, or a single-stream transport (TCP+TLS, an SSH channel, a test
// pipe) whose AcceptStream yields its one stream once. All methods are safe
// for concurrent use.
type Conn interface {
	// ALPN returns the protocol negotiated in the handshake.
	ALPN() string
	// Peer describes the remote side: its address, the node key it
	// presented, and the identity that key resolved to.
	Peer() Peer
	// AcceptStream blocks until the peer opens a stream, ctx ends or the
	// connection ends. The server side of a single-stream connection returns
	// its stream on the first call and an error matching net.ErrClosed on
	// every later one.
	AcceptStream(ctx context.Context) (Stream, error)
	// OpenStream opens a stream to the peer, blocking while the peer's
	// stream limit is reached, until ctx ends. On a single-stream
	// connection the client side gets the one stream from its first call, and
	// the server side gets [ErrSingleStream].
	OpenStream(ctx context.Context) (Stream, error)
	// MultiStream reports whether the connection carries many concurrent
	// streams (QUIC). A single-stream connection (TCP+TLS) carries exactly
	// one; a protocol that needs more opens more connections or multiplexes
	// inside its stream.
	MultiStream() bool
	// CloseWithError closes the connection, sending code and reason to the
	// peer where the transport can carry them (QUIC). Reasons are short and
	// reveal nothing internal. Closing twice is a no-op.
	CloseWithError(code ErrorCode, reason string) error
	// Context ends when the connection is closed; its cause is the error
	// that closed it: a [*CloseError] when either side closed it with a code
	// (on TCP+TLS only this side's code is known), else the transport's
	// error (an idle timeout, a reset, a failed handshake).
	Context() context.Context
	// Logger returns the connection's logger, which carries alpn, remote_ip
	// and node attributes.
	Logger() *slog.Logger
}

// Stream is one bidirectional byte stream of a [Conn]. Read and Write may be
// used from different goroutines; Close and Write must not race (Abort may).
// Close ends both directions cleanly: the peer reads EOF.
type Stream interface {
	io.ReadWriteCloser
	// CloseWrite half-closes the stream: the peer reads EOF, and this side
	// can still read. Calling it twice is a no-op.
	CloseWrite() error
	// Abort ends the stream abnormally in both directions, so the peer's
	// reads and writes fail instead of seeing a clean end: QUIC sends code in
	// RESET_STREAM and STOP_SENDING; TCP+TLS resets the connection. Use it on
	// every error and cancellation path; Close is for a clean end. It may be
	// called concurrently with Read and Write.
	Abort(code ErrorCode)
	// SetDeadline sets the read and write deadlines; see net.Conn.
	SetDeadline(t time.Time) error
	// SetReadDeadline sets the read deadline; see net.Conn.
	SetReadDeadline(t time.Time) error
	// SetWriteDeadline sets the write deadline; see net.Conn.
	SetWriteDeadline(t time.Time) error
}

// Peer describes the remote side of a connection.
type Peer struct {
	// RemoteAddr is the peer's network address; nil when unknown.
	RemoteAddr net.Addr
	// NodeID is the key the peer presented in TLS; zero if it presented none.
	NodeID NodeID
	// Identity is what NodeID resolved to; nil for an anonymous peer or an
	// unknown key.
	Identity *Identity
}

// RemoteIP returns the peer's IP address as text, or "-" when unknown.
func (p Peer) RemoteIP() string {
	switch a := p.RemoteAddr.(type) {
	case *net.UDPAddr:
		return a.IP.String()
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return "-"
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		return host
	}
}

// IdentityBinder is implemented by the connections an [Endpoint] tracks. A
// handler that authenticates a caller inside its protocol (a bearer token in
// the first frame) binds the identity, so that a reload revoking it closes
// the connection.
type IdentityBinder interface {
	BindIdentity(id Identity)
}
