package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// singleConn is a [Conn] over one stream: TCP+TLS, an SSH channel, a pipe.
type singleConn struct {
	stream *watchedStream
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
// closed; OpenStream fails with [ErrSingleStream]. The connection's context
// ends when it is closed, when the stream fails, or when the stream has
// ended in both directions. Closing the Conn closes the stream. A clean close
// (CloseWithError with CodeNoError, or the stream's Close) half-closes, then
// reads and drops the peer's input until its end, for at most 2 s and 1 MiB,
// before closing: on TCP+TLS, closing with input unread would reset the
// connection and destroy the end of the answer. logger may be nil
// (slog.Default()).
func NewStreamConn(s Stream, alpn string, peer Peer, logger *slog.Logger) Conn {
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &singleConn{alpn: alpn, peer: peer, logger: logger, ctx: ctx, cancel: cancel}
	c.stream = &watchedStream{Stream: s, end: cancel}
	c.stream.closeClean = func() error { return c.CloseWithError(CodeNoError, "") }
	return c
}

func (c *singleConn) ALPN() string             { return c.alpn }
func (c *singleConn) Peer() Peer               { return c.peer }
func (c *singleConn) Context() context.Context { return c.ctx }
func (c *singleConn) Logger() *slog.Logger     { return c.logger }
func (c *singleConn) MultiStream() bool        { return false }

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

// lingerTCP bounds how long a clean close waits for the peer to finish
// sending, so that closing with unread input does not reset the connection
// and destroy the last answer before the peer reads it.
const lingerTCP = 2 * time.Second

// lingerMaxBytes bounds what a clean close reads and drops of the peer's
// input while it lingers.
const lingerMaxBytes = 1 << 20

// CloseWithError closes the stream: cleanly for CodeNoError (half-close,
// then read and drop the peer's input until its end, for up to lingerTCP
// and lingerMaxBytes, then close), abnormally otherwise. The connection's
// context ends after the linger, with a [CloseError]: a handler that
// aborts its stream when the context ends must not turn the clean close
// into a reset. Calls after the first return nil at once.
func (c *singleConn) CloseWithError(code ErrorCode, reason string) error {
	c.mu.Lock()
	if c.stream.closed {
		c.mu.Unlock()
		return nil
	}
	c.stream.closed = true
	c.mu.Unlock()
	cause := &CloseError{Code: code, Reason: reason}
	if code != CodeNoError {
		c.cancel(cause)
		c.stream.Abort(code)
		return nil
	}
	if err := c.stream.Stream.CloseWrite(); err != nil {
		c.cancel(cause)
		c.stream.Abort(CodeInternal)
		return nil
	}
	// A stream without read deadlines cannot bound the linger: it closes
	// at once.
	if c.stream.Stream.SetReadDeadline(time.Now().Add(lingerTCP)) == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(c.stream.Stream, lingerMaxBytes))
	}
	c.cancel(cause)
	return c.stream.Stream.Close()
}

// watchedStream ends its connection's context when the stream fails or has
// ended in both directions.
type watchedStream struct {
	Stream
	end func(error)
	// closeClean is the server connection's clean close, which Close uses
	// (nil on a client's: its Close ends at once).
	closeClean func() error

	mu                 sync.Mutex
	readDone, wroteEOF bool
	closed             bool // guarded by the singleConn's mu
}

func (w *watchedStream) Read(p []byte) (int, error) {
	n, err := w.Stream.Read(p)
	switch {
	case errors.Is(err, io.EOF):
		w.mu.Lock()
		w.readDone = true
		both := w.wroteEOF
		w.mu.Unlock()
		if both {
			w.end(io.EOF)
		}
	case errors.Is(err, os.ErrDeadlineExceeded):
		// A read deadline passing ends nothing: net/http, for one, sets
		// one to stop its background read between requests, then reads
		// on.
	case err != nil:
		w.end(err)
	}
	return n, err
}

func (w *watchedStream) Write(p []byte) (int, error) {
	n, err := w.Stream.Write(p)
	if err != nil {
		w.end(err)
	}
	return n, err
}

func (w *watchedStream) CloseWrite() error {
	err := w.Stream.CloseWrite()
	w.mu.Lock()
	w.wroteEOF = true
	both := w.readDone
	w.mu.Unlock()
	if err != nil || both {
		w.end(errors.Join(err, io.EOF))
	}
	return err
}

// Close ends a server's stream as its connection's clean close does:
// half-close, then read and drop the peer's input until its end (up to
// lingerTCP) before closing. Closing at once with the peer's last bytes
// unread (unread request bytes, a half-close: TLS's close_notify and FIN)
// makes the kernel reset the connection, and a reset destroys what the
// peer has not read yet of the answer. A client's stream closes at once.
func (w *watchedStream) Close() error {
	if w.closeClean != nil {
		return w.closeClean()
	}
	w.end(net.ErrClosed)
	return w.Stream.Close()
}

// Abort ends the stream abnormally (on TCP+TLS, a reset), unless it has
// already ended cleanly in both directions: then nothing is left to abort,
// and a reset would only destroy what the peer has not read yet of the
// answer, so it closes cleanly instead.
func (w *watchedStream) Abort(code ErrorCode) {
	w.mu.Lock()
	done := w.readDone && w.wroteEOF
	w.mu.Unlock()
	if done {
		w.end(io.EOF)
		_ = w.Stream.Close()
		return
	}
	w.end(&CloseError{Code: code})
	w.Stream.Abort(code)
}

// CloseError is why a connection was closed with an application code: the
// cause of [Conn.Context] on both transports, so callers read close codes
// without knowing the transport. QUIC carries the peer's code and reason
// (Remote is then true); TCP+TLS cannot, so there it is this side's own.
type CloseError struct {
	Code   ErrorCode
	Reason string
	// Remote is true when the peer closed the connection.
	Remote bool

	transport error // the transport's own error, if any
}

func (e *CloseError) Error() string {
	by := "closed"
	if e.Remote {
		by = "closed by peer"
	}
	if e.Reason == "" {
		return fmt.Sprintf("connection %s: %v", by, e.Code)
	}
	return fmt.Sprintf("connection %s: %v: %s", by, e.Code, e.Reason)
}

// Is makes a CloseError match net.ErrClosed.
func (e *CloseError) Is(target error) bool { return target == net.ErrClosed }

// Unwrap returns the transport's error (QUIC's *ApplicationError), if any.
func (e *CloseError) Unwrap() error { return e.transport }
