package core

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
)

// singleConn is a [Conn] over one stream: TCP+TLS, an SSH channel, a pipe.
type singleConn struct {
	stream Stream
	alpn   string
	peer   Peer
	logger *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc

	// client conns yield their stream from OpenStream, server conns from
	// AcceptStream.
	client bool

	mu    sync.Mutex
	taken bool
}

// NewStreamConn wraps one stream as the server side of a [Conn]: its
// AcceptStream yields the stream once and then reports the connection
// closed; OpenStream fails with [ErrSingleStream]. Closing the Conn closes the
// stream. logger may be nil (slog.Default()).
func NewStreamConn(s Stream, alpn string, peer Peer, logger *slog.Logger) Conn {
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	return &singleConn{stream: s, alpn: alpn, peer: peer, logger: logger, ctx: ctx, cancel: cancel}
}

func (c *singleConn) ALPN() string             { return c.alpn }
func (c *singleConn) Peer() Peer               { return c.peer }
func (c *singleConn) Context() context.Context { return c.ctx }
func (c *singleConn) Logger() *slog.Logger     { return c.logger }

func (c *singleConn) AcceptStream(ctx context.Context) (Stream, error) {
	if c.client {
		return nil, ErrSingleStream
	}
	return c.take(ctx)
}

func (c *singleConn) OpenStream(ctx context.Context) (Stream, error) {
	if !c.client {
		return nil, ErrSingleStream
	}
	return c.take(ctx)
}

// take hands out the one stream once.
func (c *singleConn) take(ctx context.Context) (Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taken || c.ctx.Err() != nil {
		return nil, fmt.Errorf("core: single-stream connection: %w", net.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.taken = true
	return c.stream, nil
}

func (c *singleConn) CloseWithError(code ErrorCode, reason string) error {
	if c.ctx.Err() != nil {
		return nil
	}
	c.cancel(&CloseError{Code: code, Reason: reason})
	return c.stream.Close()
}

// CloseError is the cause of a connection context that this side closed.
type CloseError struct {
	Code   ErrorCode
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("connection closed: %v", e.Code)
	}
	return fmt.Sprintf("connection closed: %v: %s", e.Code, e.Reason)
}

// Is makes a CloseError match net.ErrClosed.
func (e *CloseError) Is(target error) bool { return target == net.ErrClosed }

// tlsStream adapts a *tls.Conn to [Stream].
type tlsStream struct {
	*tls.Conn
}

func (s tlsStream) CloseWrite() error {
	err := s.Conn.CloseWrite()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
