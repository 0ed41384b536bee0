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
}

var (
	_ Conn     = (*quicConn)(nil)
	_ QUICConn = (*quicConn)(nil)
)

func newQUICConn(qc *quic.Conn, peer Peer, logger *slog.Logger) *quicConn {
	return &quicConn{qc: qc, alpn: qc.ConnectionState().TLS.NegotiatedProtocol, peer: peer, logger: logger}
}

func (c *quicConn) ALPN() string             { return c.alpn }
func (c *quicConn) Peer() Peer               { return c.peer }
func (c *quicConn) Context() context.Context { return c.qc.Context() }
func (c *quicConn) Logger() *slog.Logger     { return c.logger }
func (c *quicConn) QUIC() *quic.Conn         { return c.qc }
func (c *quicConn) CloseWithError(code ErrorCode, reason string) error {
	return c.qc.CloseWithError(quic.ApplicationErrorCode(code), reason)
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
