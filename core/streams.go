package core

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// Streams opens the streams of a client's requests to one node over either
// transport. On a multi-stream connection (QUIC) each stream is a stream of
// that connection. A single-stream connection (TCP+TLS, a relayed
// connection) carries one: its stream serves the first request, and each
// later one gets a connection of its own from Redial, which closing the
// stream closes. Protocols with one request per stream (fs, perf, git) so
// work over both transports without knowing which they have.
type Streams struct {
	conn   Conn
	redial func(context.Context) (Conn, error)

	mu     sync.Mutex
	first  bool                      // conn's own stream was handed out
	closed bool                      // Close was called
	extra  map[*ownedStream]struct{} // streams on connections of their own, open
}

// NewStreams opens streams to conn's node. redial dials the node again for
// every stream after the first of a single-stream conn; nil means such a
// conn serves one request only. The caller keeps owning conn.
func NewStreams(conn Conn, redial func(context.Context) (Conn, error)) *Streams {
	return &Streams{conn: conn, redial: redial}
}

// Open opens a stream for one request.
func (s *Streams) Open(ctx context.Context) (Stream, error) {
	if s.conn.MultiStream() {
		return s.conn.OpenStream(ctx)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("core: streams: %w", net.ErrClosed)
	}
	if !s.first {
		s.first = true
		s.mu.Unlock()
		return s.conn.OpenStream(ctx)
	}
	s.mu.Unlock()
	if s.redial == nil {
		return nil, ErrSingleStream
	}
	nc, err := s.redial(ctx)
	if err != nil {
		return nil, err
	}
	st, err := nc.OpenStream(ctx)
	if err != nil {
		_ = nc.CloseWithError(CodeNoError, "")
		return nil, err
	}
	owned := &ownedStream{Stream: st, conn: nc, owner: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = nc.CloseWithError(CodeNoError, "")
		return nil, fmt.Errorf("core: streams: %w", net.ErrClosed)
	}
	if s.extra == nil {
		s.extra = make(map[*ownedStream]struct{})
	}
	s.extra[owned] = struct{}{}
	return owned, nil
}

// Close closes the connections Open dialed that are still open; their
// streams fail. The first connection is the caller's to close.
func (s *Streams) Close() {
	s.mu.Lock()
	s.closed = true
	extra := s.extra
	s.extra = nil
	s.mu.Unlock()
	for owned := range extra {
		_ = owned.conn.CloseWithError(CodeNoError, "")
	}
}

// ownedStream is a stream on a connection of its own: closing or aborting
// the stream ends the connection.
type ownedStream struct {
	Stream
	conn  Conn
	owner *Streams
}

func (o *ownedStream) Close() error {
	err := o.Stream.Close()
	o.done()
	_ = o.conn.CloseWithError(CodeNoError, "")
	return err
}

func (o *ownedStream) Abort(code ErrorCode) {
	o.Stream.Abort(code)
	o.done()
	_ = o.conn.CloseWithError(code, "")
}

func (o *ownedStream) done() {
	o.owner.mu.Lock()
	delete(o.owner.extra, o)
	o.owner.mu.Unlock()
}
