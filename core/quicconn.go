package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/quic-go/quic-go"
)

// QUICConn is implemented by connections carried by QUIC. It is the escape
// hatch for handlers that need the QUIC connection itself (HTTP/3). Core
// still owns the connection: a handler must not close it except through
// [Conn.CloseWithError].
type QUICConn interface {
	QUIC() *quic.Conn
}

// quicConn adapts a *quic.Conn to [Conn].
type quicConn struct {
	qc     *quic.Conn
	alpn   string
	peer   Peer
	logger *slog.Logger
	ctx    context.Context // qc's context, its cause made transport-neutral
	cancel context.CancelCauseFunc
}

var (
	_ Conn     = (*quicConn)(nil)
	_ QUICConn = (*quicConn)(nil)
)

func newQUICConn(qc *quic.Conn, peer Peer, logger *slog.Logger) *quicConn {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(qc.Context()))
	context.AfterFunc(qc.Context(), func() { cancel(closeCause(context.Cause(qc.Context()))) })
	return &quicConn{qc: qc, alpn: qc.ConnectionState().TLS.NegotiatedProtocol, peer: peer, logger: logger, ctx: ctx, cancel: cancel}
}

// closeCause turns QUIC's application close into a [*CloseError], keeping
// the QUIC error in its chain; other causes are returned as they are.
func closeCause(err error) error {
	var ae *quic.ApplicationError
	if errors.As(err, &ae) {
		return &CloseError{Code: ErrorCode(ae.ErrorCode), Reason: ae.ErrorMessage, Remote: ae.Remote, transport: err}
	}
	return err
}

// AsCloseError finds the application close in err: a [*CloseError] (the
// cause of [Conn.Context]) or the error a QUIC stream or dial returned
// because the connection was closed with a code. Callers read close codes
// with it without knowing the transport.
func AsCloseError(err error) (*CloseError, bool) {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce, true
	}
	ce, ok := closeCause(err).(*CloseError)
	return ce, ok
}

func (c *quicConn) ALPN() string             { return c.alpn }
func (c *quicConn) Peer() Peer               { return c.peer }
func (c *quicConn) Context() context.Context { return c.ctx }
func (c *quicConn) Logger() *slog.Logger     { return c.logger }
func (c *quicConn) MultiStream() bool        { return true }
func (c *quicConn) QUIC() *quic.Conn         { return c.qc }
func (c *quicConn) CloseWithError(code ErrorCode, reason string) error {
	err := c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
	// Our own close is over when this returns, not when the context's
	// watcher gets to run.
	c.cancel(closeCause(context.Cause(c.qc.Context())))
	return err
}

func (c *quicConn) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, connErr(c.qc, err)
	}
	return quicStream{s}, nil
}

func (c *quicConn) OpenStream(ctx context.Context) (Stream, error) {
	s, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, connErr(c.qc, err)
	}
	return quicStream{s}, nil
}

// connErr makes an error from a closed connection match net.ErrClosed while
// keeping the QUIC error (its code and reason) in the chain.
func connErr(qc *quic.Conn, err error) error {
	if qc.Context().Err() != nil {
		return fmt.Errorf("%w: %w", net.ErrClosed, err)
	}
	return err
}

// quicStream adapts a *quic.Stream to [Stream]: Close ends both directions,
// CloseWrite only the sending one.
type quicStream struct {
	*quic.Stream
}

func (s quicStream) CloseWrite() error {
	err := s.Stream.Close()
	if err != nil {
		// quic-go reports a stream the peer stopped only as text; the
		// typed reason is the send side's context cause.
		var se *quic.StreamError
		if errors.As(context.Cause(s.Stream.Context()), &se) {
			return se
		}
	}
	return err
}

// PeerStopped reports whether err, from a stream's Write or CloseWrite, says
// the peer stopped reading it normally (QUIC STOP_SENDING with
// [CodeNoError]): the peer ended the exchange, as a TCP server does by
// closing, rather than failing it.
func PeerStopped(err error) bool {
	var se *quic.StreamError
	return errors.As(err, &se) && se.Remote && se.ErrorCode == quic.StreamErrorCode(CodeNoError)
}

func (s quicStream) Close() error {
	s.Stream.CancelRead(0)
	return s.Stream.Close()
}

func (s quicStream) Abort(code ErrorCode) {
	s.Stream.CancelRead(quic.StreamErrorCode(code))
	s.Stream.CancelWrite(quic.StreamErrorCode(code))
}
