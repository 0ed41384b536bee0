package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alkdev/alknet/core"
)

// Scopes the handler checks.
const (
	// ScopeRead admits get, stat and has.
	ScopeRead = "fs:read"
	// ScopeWrite admits put (and its pin).
	ScopeWrite = "fs:write"
)

// requestTimeout bounds the wait for a stream's request frame.
const requestTimeout = 30 * time.Second

// codeFailed resets a get stream that failed after the CAR began.
const codeFailed core.ErrorCode = 0x100

// Config configures [New].
type Config struct {
	// Store holds the blocks served and received; required.
	Store *Store
	// Public admits anonymous callers to get, stat and has. Default false:
	// reads need fs:read. Writes always need fs:write. SetPublic changes it
	// later.
	Public bool
	// Logger receives per-request debug lines; nil means slog.Default().
	Logger *slog.Logger
	// MaxGets bounds the gets being sent at once, each holding a section's
	// buffer (about 290 KiB with its stream) and a goroutine while its peer
	// takes the CAR; anonymous peers may hold an eighth of them (at least
	// one). A get past either is answered unavailable. Default 256.
	MaxGets int
}

// DefaultMaxGets is [Config].MaxGets's default.
const DefaultMaxGets = 256

// maxMaxGets is the largest [Config].MaxGets (the slots count in int32).
const maxMaxGets = 1 << 20

// Handler serves alknet/fs: one request per stream (get, put, has, stat).
type Handler struct {
	store  *Store
	public atomic.Bool
	log    *slog.Logger
	gets   getSlots
}

// New returns a handler for cfg. It starts nothing.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("fs: config: Store is required")
	}
	if cfg.MaxGets < 0 || cfg.MaxGets > maxMaxGets {
		return nil, fmt.Errorf("fs: config: MaxGets %d out of range 0..%d", cfg.MaxGets, maxMaxGets)
	}
	if cfg.MaxGets == 0 {
		cfg.MaxGets = DefaultMaxGets
	}
	h := &Handler{store: cfg.Store, log: cfg.Logger}
	h.gets.max, h.gets.maxAnon = int32(cfg.MaxGets), int32(max(1, cfg.MaxGets/8))
	if h.log == nil {
		h.log = slog.Default()
	}
	h.public.Store(cfg.Public)
	return h, nil
}

// SetPublic changes whether anonymous callers may read; the next request
// sees the new value.
func (h *Handler) SetPublic(public bool) { h.public.Store(public) }

// ALPNs returns [ALPN].
func (h *Handler) ALPNs() []string { return []string{ALPN} }

// Serve answers the connection's streams, each in its own goroutine, until
// ctx or the connection ends. When ctx ends it takes no new stream but
// finishes the requests in flight (the endpoint's drain), which end early
// only when the connection does.
func (h *Handler) Serve(ctx context.Context, conn core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil // the connection or the node is done
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.serveStream(ctx, conn, st)
		}()
	}
}

// access returns who may run op.
func (h *Handler) access(op string) core.AccessControl {
	if op == OpPut {
		return core.AccessControl{AllScopes: []string{ScopeWrite}}
	}
	return core.AccessControl{Public: h.public.Load(), AllScopes: []string{ScopeRead}}
}

func (h *Handler) serveStream(ctx context.Context, conn core.Conn, st core.Stream) {
	// Until its request arrived, a stream ends with ctx; the request then
	// outlives ctx (a node stopping drains it) and ends with the connection.
	waiting := context.AfterFunc(ctx, func() { st.Abort(core.CodeShutdown) })
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(conn.Context(), cancel)
	defer stop()
	log := conn.Logger()

	_ = st.SetReadDeadline(time.Now().Add(requestTimeout))
	max := MaxRequestBytes
	if conn.Peer().Identity == nil {
		max = MaxAnonRequestBytes
	}
	body, err := core.FrameLimitsOf(conn).ReadFrame(st, max)
	if !waiting() {
		return // aborted: the node is stopping
	}
	switch {
	case errors.Is(err, core.ErrOverBudget):
		log.Debug("fs: request over the in-flight budget; refusing the stream")
		st.Abort(core.CodeBusy)
		return
	case err != nil:
		h.fail(st, &RemoteError{Code: CodeBadRequest, Message: "bad request frame"})
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	var raw Request
	req, err := decodeRequest(body, &raw)
	if err != nil {
		h.fail(st, &RemoteError{Code: CodeBadRequest, Message: err.Error()})
		return
	}
	if err := h.access(req.op).Check(conn.Peer().Identity); err != nil {
		log.Warn("fs request refused", "op", req.op, "err", err)
		code := CodeForbidden
		if errors.Is(err, core.ErrUnauthenticated) {
			code = CodeUnauthenticated
		}
		h.fail(st, &RemoteError{Code: code, Message: err.Error()})
		return
	}
	if (req.op == OpGet || req.op == OpPut) && core.FilesLow() {
		// Reading or writing blocks opens files: not while the node is
		// down to its reserve of descriptors (accepting, its own stores).
		h.fail(st, &RemoteError{Code: CodeUnavailable, Message: "the node is out of file descriptors; try later"})
		return
	}
	log.Debug("fs request", "op", req.op)
	switch req.op {
	case OpHas:
		h.has(ctx, st, log, req)
	case OpStat:
		h.stat(ctx, st, log, req)
	case OpGet:
		h.get(ctx, st, log, req, core.FrameLimitsOf(conn), conn.Peer().Identity == nil)
	case OpPut:
		h.put(ctx, st, log, req, core.FrameLimitsOf(conn))
	}
}

// getSlots counts the gets being sent ([Config].MaxGets): all of them,
// and the anonymous peers' among them.
type getSlots struct {
	max, maxAnon int32
	all, anon    atomic.Int32
}

// take claims a slot for a get, an anonymous peer's if anon; false if
// none is free.
func (g *getSlots) take(anon bool) bool {
	if g.all.Add(1) > g.max {
		g.all.Add(-1)
		return false
	}
	if anon && g.anon.Add(1) > g.maxAnon {
		g.anon.Add(-1)
		g.all.Add(-1)
		return false
	}
	return true
}

// put gives back a slot take claimed.
func (g *getSlots) put(anon bool) {
	if anon {
		g.anon.Add(-1)
	}
	g.all.Add(-1)
}

// fail answers with an error and ends the stream.
func (h *Handler) fail(st core.Stream, e *RemoteError) {
	_ = writeFrame(st, Response{Error: e})
	_ = st.Close()
}

// answer sends a successful answer and ends the stream.
func (h *Handler) answer(st core.Stream, resp Response) {
	if err := writeFrame(st, resp); err != nil {
		st.Abort(codeFailed)
		return
	}
	_ = st.Close()
}

// remoteError maps the failure of a request that decoded to what the peer
// is told: its own faults (a bad block, a malformed CAR, content the node
// lacks) with their message; the node's faults as internal or unavailable,
// with a message that reveals nothing of the node.
func remoteError(err error) *RemoteError {
	var be *BlockError
	var re *requestError
	switch {
	case errors.As(err, &be):
		return &RemoteError{Code: CodeInvalidBlock, Message: be.Error()}
	case errors.As(err, &re):
		return &RemoteError{Code: CodeBadRequest, Message: re.Error()}
	case errors.Is(err, ErrNotFound):
		return &RemoteError{Code: CodeNotFound, Message: err.Error()}
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return &RemoteError{Code: CodeUnavailable, Message: "the node's store is full"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &RemoteError{Code: CodeUnavailable, Message: "the node is shutting down"}
	default:
		return &RemoteError{Code: CodeInternal, Message: "internal error"}
	}
}

// failWith answers a request of op that failed with err, logging the
// node's own faults for the operator.
func (h *Handler) failWith(st core.Stream, log *slog.Logger, op string, err error) {
	e := remoteError(err)
	shutdown := errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	if (e.Code == CodeInternal || e.Code == CodeUnavailable) && !shutdown {
		log.Error("fs request failed", "op", op, "err", err)
	} else {
		log.Debug("fs request failed", "op", op, "code", e.Code, "err", err)
	}
	h.fail(st, e)
}

func (h *Handler) has(ctx context.Context, st core.Stream, log *slog.Logger, req request) {
	out := make([]bool, len(req.cids))
	for i, c := range req.cids {
		ok, err := h.store.Has(ctx, c)
		if err != nil {
			h.failWith(st, log, OpHas, err)
			return
		}
		out[i] = ok
	}
	h.answer(st, Response{Have: out})
}

func (h *Handler) stat(ctx context.Context, st core.Stream, log *slog.Logger, req request) {
	c, err := h.store.Resolve(ctx, req.root, req.path)
	if err == nil {
		var s Stat
		if s, err = h.store.Stat(ctx, c); err == nil {
			h.answer(st, Response{Stat: &s})
			return
		}
	}
	h.failWith(st, log, OpStat, err)
}

// get sends the CAR the request selects. The peer must take each section
// as it must send a frame, at lim's rate after its grace: a peer that
// stops reading is not served for ever (it would hold the section's
// buffer, a goroutine and the root's protection from GC).
func (h *Handler) get(ctx context.Context, st core.Stream, log *slog.Logger, req request, lim core.FrameLimits, anon bool) {
	if !h.gets.take(anon) {
		log.Debug("fs: too many gets being sent; refusing one", "anonymous", anon)
		h.fail(st, &RemoteError{Code: CodeUnavailable, Message: "the node is sending too many gets; try later"})
		return
	}
	defer h.gets.put(anon)
	target, err := h.store.Resolve(ctx, req.root, req.path)
	if err == nil {
		_, err = h.store.block(ctx, target)
	}
	if err != nil {
		h.failWith(st, log, OpGet, err)
		return
	}
	if err := writeFrame(st, Response{}); err != nil {
		st.Abort(codeFailed)
		return
	}
	sel := Selection{Path: req.path, Range: req.rng, Have: req.have}
	if _, err := h.store.ExportCAR(ctx, req.root, sel, paced{st, lim}); err != nil {
		log.Debug("fs get failed", "err", err)
		st.Abort(codeFailed)
		return
	}
	_ = st.SetWriteDeadline(time.Time{})
	_ = st.Close()
}

// put receives a CAR under the connection's frame limits lim: each
// section is charged to its in-flight budget while it arrives (over it,
// the stream is reset with code busy, as a frame's) and must keep
// lim's rate.
func (h *Handler) put(ctx context.Context, st core.Stream, log *slog.Logger, req request, lim core.FrameLimits) {
	roots, ts, err := h.store.receiveCAR(ctx, st, req.root, nil, newPeerLimits(st, lim))
	if errors.Is(err, core.ErrOverBudget) {
		log.Debug("fs: put over the in-flight budget; refusing the stream")
		st.Abort(core.CodeBusy)
		return
	}
	if err == nil && len(roots) != 1 {
		err = badRequest(fmt.Errorf("put carries %d roots, want 1", len(roots)))
	}
	if err != nil {
		h.failWith(st, log, OpPut, err)
		return
	}
	root := roots[0]
	if req.pin != "" {
		err = h.store.Pin(ctx, req.pin, root)
	} else {
		_, err = h.store.walk(ctx, root, nil)
	}
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			err = badRequest(fmt.Errorf("incomplete DAG: %w", err))
		}
		h.failWith(st, log, OpPut, err)
		return
	}
	h.answer(st, Response{Root: root.String(), Transfer: &ts})
}
