package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/core/netutil"
)

// RelayConfig configures a head's [RelayServer].
type RelayConfig struct {
	// MayListen decides whether an identity (nil: anonymous) may register
	// its connection as the way to reach its NodeID. Nil: nobody may.
	MayListen func(id *Identity) error
	// MayConnect decides whether an identity (nil: anonymous) may open a
	// relayed stream to worker. Nil: nobody may. [RelayAccess] is the
	// usual rule.
	MayConnect func(id *Identity, worker NodeID) error
	// MaxStreamsPerWorker caps the relayed streams open at once to one
	// worker, over all clients. Default 64.
	MaxStreamsPerWorker int
	// AcceptTimeout bounds how long the head waits for a worker to take a
	// relayed stream (open it and answer the accept). Default 10s.
	AcceptTimeout time.Duration
	// Logger receives the relay's logs; nil means slog.Default(). It never
	// logs whom a client asks for.
	Logger *slog.Logger
}

// DefaultRelayMaxStreamsPerWorker is [RelayConfig].MaxStreamsPerWorker's
// default.
const DefaultRelayMaxStreamsPerWorker = 64

// DefaultRelayAcceptTimeout is [RelayConfig].AcceptTimeout's default.
const DefaultRelayAcceptTimeout = 10 * time.Second

// RelayAccess is the usual [RelayConfig].MayConnect: an identity holding
// [RelayScope] reaches every attached node, one holding
// "relay:<nodeid>" that node only.
func RelayAccess(id *Identity, worker NodeID) error {
	return AccessControl{AnyScopes: []string{RelayScope, RelayScope + ":" + worker.String()}}.Check(id)
}

// RelayServer is the head's side of [RelayALPN]: workers register on it,
// and it splices each client's relayed stream to a stream it opens on the
// worker's connection. It holds no key and no TLS state for what it
// relays: client and worker run TLS end to end inside the stream, and the
// head copies bytes. Safe for concurrent use.
type RelayServer struct {
	cfg RelayConfig

	mu      sync.Mutex
	workers map[NodeID]*relayWorker
}

// relayWorker is one registration: a worker's connection.
type relayWorker struct {
	conn  Conn
	slots chan struct{} // one per relayed stream open to the worker
	gone  chan struct{} // closed when a newer registration replaced it
}

// NewRelayServer validates cfg and returns the handler.
func NewRelayServer(cfg RelayConfig) (*RelayServer, error) {
	var errs []error
	if cfg.MaxStreamsPerWorker < 0 || cfg.MaxStreamsPerWorker > 1<<16 {
		errs = append(errs, fmt.Errorf("max_streams_per_worker: %d out of range 0..65536", cfg.MaxStreamsPerWorker))
	}
	if cfg.AcceptTimeout < 0 || cfg.AcceptTimeout > 0 && cfg.AcceptTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("accept_timeout: %v is below the minimum 100ms", cfg.AcceptTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("core: relay config: %w", err)
	}
	setDefault(&cfg.MaxStreamsPerWorker, DefaultRelayMaxStreamsPerWorker)
	setDefault(&cfg.AcceptTimeout, DefaultRelayAcceptTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &RelayServer{cfg: cfg, workers: make(map[NodeID]*relayWorker)}, nil
}

// ALPNs implements [Handler].
func (r *RelayServer) ALPNs() []string { return []string{RelayALPN} }

// Workers returns how many workers are registered.
func (r *RelayServer) Workers() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.workers)
}

// Registered returns the NodeIDs of the registered workers, sorted.
func (r *RelayServer) Registered() []NodeID {
	r.mu.Lock()
	out := make([]NodeID, 0, len(r.workers))
	for id := range r.workers {
		out = append(out, id)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b NodeID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Serve implements [Handler]: each stream the peer opens is one request.
// Over TCP+TLS that is one connect per connection (a listen needs QUIC,
// since the head opens streams to the worker).
func (r *RelayServer) Serve(ctx context.Context, conn Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		wg.Go(func() { r.serveStream(ctx, conn, s) })
	}
}

func (r *RelayServer) serveStream(ctx context.Context, conn Conn, s Stream) {
	b, err := readRelayFrame(s, FrameLimitsOf(conn), time.Now().Add(relayHeaderTimeout))
	if err != nil {
		conn.Logger().Debug("relay: no request", "err", err)
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrEmptyFrame) {
			refuseRelay(s, RelayBadRequest, "header too large or empty")
			return
		}
		s.Abort(CodeProtocol)
		return
	}
	req, err := decodeRelayRequest(b)
	if err != nil {
		conn.Logger().Debug("relay: bad request", "err", err)
		refuseRelay(s, RelayBadRequest, err.Error())
		return
	}
	switch req.Op {
	case relayOpListen:
		r.listen(ctx, conn, s)
	case relayOpConnect:
		r.connect(ctx, conn, s, req)
	case relayOpPunch:
		r.punch(ctx, conn, s, req)
	default: // accept goes the other way
		refuseRelay(s, RelayBadRequest, "unexpected op")
	}
}

// refuseRelay answers a request with an error and closes the stream.
func refuseRelay(s Stream, code RelayCode, reason string) {
	if err := writeRelayHeader(s, relayReply{Error: code, Reason: Clip(reason)}); err != nil {
		s.Abort(CodeRefused)
		return
	}
	_ = s.Close()
}

// listen registers conn as the way to its NodeID until the worker closes
// the stream, the connection ends, or a newer registration replaces it.
func (r *RelayServer) listen(ctx context.Context, conn Conn, s Stream) {
	p := conn.Peer()
	if err := r.check(r.cfg.MayListen == nil, func() error { return r.cfg.MayListen(p.Identity) }); err != nil {
		LogAuth(r.cfg.Logger, AuthReject, RelayALPN, p, p.Identity)
		refuseRelay(s, RelayForbidden, "listen: "+refusalText(err))
		return
	}
	if !conn.MultiStream() {
		refuseRelay(s, RelayBadRequest, "listen needs a QUIC connection")
		return
	}
	w := &relayWorker{conn: conn, slots: make(chan struct{}, r.cfg.MaxStreamsPerWorker), gone: make(chan struct{})}
	r.mu.Lock()
	old := r.workers[p.NodeID]
	r.workers[p.NodeID] = w
	r.mu.Unlock()
	if old != nil {
		close(old.gone)
	}
	defer func() {
		r.mu.Lock()
		if r.workers[p.NodeID] == w {
			delete(r.workers, p.NodeID)
		}
		r.mu.Unlock()
	}()
	if err := writeRelayHeader(s, relayReply{OK: true}); err != nil {
		s.Abort(CodeInternal)
		return
	}
	conn.Logger().Info("relay: worker registered")
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		// The worker sends nothing more; its end ends the registration.
		_, _ = io.Copy(io.Discard, io.LimitReader(s, 1<<20))
	}()
	select {
	case <-ended:
	case <-conn.Context().Done():
	case <-ctx.Done():
	case <-w.gone:
		conn.Logger().Info("relay: registration replaced by a newer one")
		r.mu.Lock()
		same := r.workers[p.NodeID] != nil && r.workers[p.NodeID].conn == conn
		r.mu.Unlock()
		if !same { // a listen again on the same connection keeps it
			_ = conn.CloseWithError(CodeNoError, "replaced")
		}
	}
	s.Abort(CodeNoError)
	<-ended
	conn.Logger().Info("relay: worker unregistered")
}

// refusalText is the reason a refused identity reads: whether its key is
// unknown, and the first scope it could be granted, quoted as
// [AccessControl]'s reasons are.
func refusalText(err error) string {
	scope := RelayScope
	if m := quotedScope(err.Error()); m != "" {
		scope = m
	}
	if errors.Is(err, ErrUnauthenticated) {
		return fmt.Sprintf("unknown key: needs scope %q", scope)
	}
	return fmt.Sprintf("needs scope %q", scope)
}

// quotedScope returns the first scope err's text quotes, or names after
// "scopes ".
func quotedScope(text string) string {
	if i := strings.IndexByte(text, '"'); i >= 0 {
		if j := strings.IndexByte(text[i+1:], '"'); j > 0 {
			return text[i+1 : i+1+j]
		}
	}
	if _, rest, ok := strings.Cut(text, "scopes "); ok {
		first, _, _ := strings.Cut(rest, ",")
		return strings.TrimSpace(first)
	}
	return ""
}

// check runs an access decision; deny is true when there is no policy.
func (r *RelayServer) check(deny bool, f func() error) error {
	if deny {
		return ErrForbidden
	}
	return f()
}

// reserve checks that the client on conn may reach the node req names
// and takes one of that node's relayed-stream slots, released by the
// function it returns. When the client may not, it answers s with the
// refusal and returns nil.
func (r *RelayServer) reserve(conn Conn, s Stream, req relayRequest) (*relayWorker, func()) {
	p := conn.Peer()
	target, err := ParseNodeID(req.Node)
	if err != nil {
		refuseRelay(s, RelayBadRequest, "name the node")
		return nil, nil
	}
	if err := r.check(r.cfg.MayConnect == nil, func() error { return r.cfg.MayConnect(p.Identity, target) }); err != nil {
		LogAuth(r.cfg.Logger, AuthReject, RelayALPN, p, p.Identity)
		refuseRelay(s, RelayForbidden, refusalText(err))
		return nil, nil
	}
	r.mu.Lock()
	w := r.workers[target]
	r.mu.Unlock()
	if w == nil {
		refuseRelay(s, RelayNoNode, "no such node attached to this head")
		return nil, nil
	}
	select {
	case w.slots <- struct{}{}:
		return w, func() { <-w.slots }
	default:
		conn.Logger().Warn("relay: a worker's relayed streams at the limit", "max", cap(w.slots))
		refuseRelay(s, RelayBusy, "too many relayed connections to that node")
		return nil, nil
	}
}

// refuseAsWorker answers s with what went wrong asking the worker: its
// own refusal, or that it did not answer.
func (r *RelayServer) refuseAsWorker(conn Conn, s Stream, err error) {
	var re *RelayError
	if errors.As(err, &re) {
		refuseRelay(s, re.Code, re.Reason)
		return
	}
	conn.Logger().Debug("relay: worker did not answer", "err", err)
	refuseRelay(s, RelayUnavailable, "the node did not answer")
}

// connect splices s to a stream opened on the worker's connection, once
// the worker accepted it.
func (r *RelayServer) connect(ctx context.Context, conn Conn, s Stream, req relayRequest) {
	w, release := r.reserve(conn, s, req)
	if w == nil {
		return
	}
	defer release()
	ws, err := r.accept(ctx, w, conn.Peer(), req.ALPN)
	if err != nil {
		r.refuseAsWorker(conn, s, err)
		return
	}
	if err := writeRelayHeader(s, relayReply{OK: true}); err != nil {
		s.Abort(CodeInternal)
		ws.Abort(CodeInternal)
		return
	}
	conn.Logger().Debug("relay: relayed stream open")
	// From here the head copies bytes it cannot read: TLS records of the
	// client's handshake with the worker, then their traffic. QUIC flow
	// control on both streams bounds what it buffers.
	netutil.Relay(ctx, s, ws)
}

// accept opens a stream to w for a client p and alpn and waits, within
// the accept timeout, for the worker to take it. A refusal is a
// [*RelayError].
func (r *RelayServer) accept(ctx context.Context, w *relayWorker, p Peer, alpn string) (Stream, error) {
	from := ""
	if p.RemoteAddr != nil {
		from = p.RemoteAddr.String()
	}
	client := ""
	if !p.NodeID.IsZero() {
		client = p.NodeID.String()
	}
	return r.ask(ctx, w, relayRequest{Op: relayOpAccept, ALPN: alpn, From: from, Client: client})
}

// ask opens a stream to w, sends req and waits, within the accept
// timeout, for the worker's answer; it returns the stream once the worker
// said ok. A refusal is a [*RelayError].
func (r *RelayServer) ask(ctx context.Context, w *relayWorker, req relayRequest) (Stream, error) {
	deadline := time.Now().Add(r.cfg.AcceptTimeout)
	octx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ws, err := w.conn.OpenStream(octx)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if err := writeRelayHeader(ws, req); err != nil {
		ws.Abort(CodeInternal)
		return nil, err
	}
	b, err := readRelayFrame(ws, FrameLimitsOf(w.conn), deadline)
	if err != nil {
		ws.Abort(CodeProtocol)
		return nil, err
	}
	rep, err := decodeRelayReply(b)
	if err != nil {
		ws.Abort(CodeProtocol)
		return nil, err
	}
	if !rep.OK {
		_ = ws.Close()
		reason := "the node refused"
		if rep.Reason != "" {
			reason += ": " + rep.Reason
		}
		code := RelayRefused
		if rep.Error == RelayBusy {
			code = RelayBusy
		}
		return nil, &RelayError{Code: code, Reason: reason}
	}
	return ws, nil
}
