package call

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"log/slog"

	"github.com/alkdev/alknet/core"
)

// Options configures a [Client].
type Options struct {
	// Dialer connects and checks the node's key; required by [Dial].
	Dialer *core.Dialer
	// Registry holds operations this side serves to the peer on the same
	// connection (the protocol is symmetric); nil serves none.
	Registry *Registry
	// Identities resolves the node's key to an identity, for the calls the
	// node makes to this side (a head calling its worker); nil leaves the
	// node anonymous.
	Identities core.IdentityProvider
	// AuthToken, if set, authenticates every call instead of the
	// connection's TLS identity.
	AuthToken string
	// MaxFrameBytes caps a frame; default DefaultMaxFrameBytes.
	MaxFrameBytes int
	// Logger receives the client's logs; nil means slog.Default().
	Logger *slog.Logger
	// EarlyData makes Dial send the first calls with the handshake (0-RTT)
	// when the Dialer holds a ticket from the node that allows it
	// ([core.Dialer.DialEarly]): a replay-safe query is answered a round
	// trip sooner; the node runs every other call once the handshake
	// completed. With the Dialer's network auto, the connection is closed
	// if TCP+TLS connects before its handshake completes (UDP stopped
	// getting through since the ticket): its calls fail with UNAVAILABLE,
	// and [Client.FellBackToTCP] says they can be made again on a client
	// from a new Dial, which gets the TCP+TLS connection.
	EarlyData bool

	older bool // see server.older
}

// Client calls the operations of one node over one connection. It is safe
// for concurrent use; calls run concurrently.
type Client struct {
	conn  core.Conn
	s     *session
	token string
	done  chan struct{}
}

// Dial connects to addr ("[<nodeid>@]host:port") and returns a client.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.Dialer == nil {
		return nil, errors.New("call: Dial needs a core.Dialer")
	}
	dial := opts.Dialer.Dial
	if opts.EarlyData {
		dial = opts.Dialer.DialEarly
	}
	conn, err := dial(ctx, addr, ALPN)
	if err != nil {
		return nil, err
	}
	c, err := NewClient(ctx, conn, opts)
	if err != nil {
		_ = conn.CloseWithError(core.CodeNoError, "")
		return nil, err
	}
	return c, nil
}

// NewClient runs the call protocol on a connection this side dialed. The
// client owns the connection from then on and closes it in Close.
func NewClient(ctx context.Context, conn core.Conn, opts Options) (*Client, error) {
	reg := opts.Registry
	if reg == nil {
		reg = NewRegistry()
	}
	srv, err := newServer(reg, nil, nil, opts.MaxFrameBytes, opts.Logger)
	if err != nil {
		return nil, err
	}
	srv.older = opts.older
	var caller *core.Identity
	if opts.Identities != nil {
		if id, ok := opts.Identities.ByNodeID(conn.Peer().NodeID); ok {
			caller = &id
		}
	}
	s := newSession(conn, caller, srv)
	if err := s.open(ctx, true); err != nil {
		return nil, err
	}
	c := &Client{conn: conn, s: s, token: opts.AuthToken, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		s.serve(s.ctx)
	}()
	return c, nil
}

// FellBackToTCP reports, once the client is closed, whether its connection,
// from Dial with EarlyData, was closed because TCP+TLS connected before its
// handshake completed ([core.FellBackToTCP]): the node then ran none of its
// calls but replay-safe queries, and never will, so each can be made again
// on a client from a new Dial, which gets that TCP+TLS connection.
func (c *Client) FellBackToTCP() bool { return core.FellBackToTCP(c.conn) }

// Peer returns the node's side of the connection: its NodeID and address.
func (c *Client) Peer() core.Peer { return c.conn.Peer() }

// Done is closed when the connection has ended and every call with it.
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection; calls in flight fail with UNAVAILABLE.
func (c *Client) Close() error {
	err := c.conn.CloseWithError(core.CodeNoError, "")
	<-c.done
	return err
}

// Call runs a query or mutation and decodes its output into out (if not
// nil). Errors from the node are *Error values; cancelling ctx aborts the
// call on the node. The wire does not say what shape the caller expects:
// called with Call, a subscription yields its first output (a subscription
// that completes without one is INVALID_OPERATION_TYPE); use Subscribe.
func (c *Client) Call(ctx context.Context, op string, in, out any) error {
	raw, err := encodeInput(in)
	if err != nil {
		return err
	}
	p, err := c.s.start(ctx, op, raw, c.token, nil)
	if err != nil {
		return err
	}
	return c.s.finishCall(ctx, p, out)
}

// Subscribe runs a subscription and yields each output until it completes.
// An error ends the sequence; stopping the iteration, or cancelling ctx,
// aborts the subscription on the node.
func (c *Client) Subscribe(ctx context.Context, op string, in any) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		raw, err := encodeInput(in)
		if err != nil {
			yield(nil, err)
			return
		}
		p, err := c.s.start(ctx, op, raw, c.token, nil)
		if err != nil {
			yield(nil, err)
			return
		}
		c.s.stream(ctx, p, yield)
	}
}

// encodeInput marshals a call's input; raw JSON passes as it is.
func encodeInput(in any) (json.RawMessage, error) {
	if raw, ok := in.(json.RawMessage); ok {
		return raw, nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, Errorf(CodeInvalidInput, "encode input: %v", err)
	}
	return b, nil
}
