package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/call"
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
}

// Handler serves alknet/fs: one request per stream (get, put, has, stat).
type Handler struct {
	store  *Store
	public atomic.Bool
	log    *slog.Logger
}

// New returns a handler for cfg. It starts nothing.
func New(cfg Config) (*Handler, error) {
	if cfg.Store == nil {
		return nil, errors.New("fs: config: Store is required")
	}
	h := &Handler{store: cfg.Store, log: cfg.Logger}
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
// ctx or the connection ends.
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(conn.Context(), cancel)
	defer stop()
	log := conn.Logger()

	_ = st.SetReadDeadline(time.Now().Add(requestTimeout))
	max := MaxRequestBytes
	if conn.Peer().Identity == nil {
		max = MaxAnonRequestBytes
	}
	body, err := call.ReadFrameWithin(st, max, core.FrameLimitsOf(conn))
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
	log.Debug("fs request", "op", req.op)
	switch req.op {
	case OpHas:
		h.has(ctx, st, req)
	case OpStat:
		h.stat(ctx, st, req)
	case OpGet:
		h.get(ctx, st, req)
	case OpPut:
		h.put(ctx, st, req)
	}
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

// remoteError maps a local error to what the peer is told.
func remoteError(err error) *RemoteError {
	var be *BlockError
	switch {
	case errors.As(err, &be):
		return &RemoteError{Code: CodeInvalidBlock, Message: be.Error()}
	case errors.Is(err, ErrNotFound):
		return &RemoteError{Code: CodeNotFound, Message: err.Error()}
	default:
		return &RemoteError{Code: CodeInternal, Message: "internal error"}
	}
}

func (h *Handler) has(ctx context.Context, st core.Stream, req request) {
	out := make([]bool, len(req.cids))
	for i, c := range req.cids {
		ok, err := h.store.Has(ctx, c)
		if err != nil {
			h.fail(st, remoteError(err))
			return
		}
		out[i] = ok
	}
	h.answer(st, Response{Have: out})
}

func (h *Handler) stat(ctx context.Context, st core.Stream, req request) {
	c, err := h.store.Resolve(ctx, req.root, req.path)
	if err == nil {
		var s Stat
		if s, err = h.store.Stat(ctx, c); err == nil {
			h.answer(st, Response{Stat: &s})
			return
		}
	}
	h.fail(st, remoteError(err))
}

func (h *Handler) get(ctx context.Context, st core.Stream, req request) {
	target, err := h.store.Resolve(ctx, req.root, req.path)
	if err == nil {
		_, err = h.store.block(ctx, target)
	}
	if err != nil {
		h.fail(st, remoteError(err))
		return
	}
	if err := writeFrame(st, Response{}); err != nil {
		st.Abort(codeFailed)
		return
	}
	sel := Selection{Path: req.path, Range: req.rng, Have: req.have}
	if _, err := h.store.ExportCAR(ctx, req.root, sel, st); err != nil {
		h.log.Debug("fs get failed", "err", err)
		st.Abort(codeFailed)
		return
	}
	_ = st.Close()
}

func (h *Handler) put(ctx context.Context, st core.Stream, req request) {
	roots, ts, err := h.store.receiveCAR(ctx, st, req.root)
	if err == nil && len(roots) != 1 {
		err = fmt.Errorf("put carries %d roots, want 1", len(roots))
	}
	if err != nil {
		var be *BlockError
		if errors.As(err, &be) {
			h.fail(st, remoteError(err))
		} else {
			h.fail(st, &RemoteError{Code: CodeBadRequest, Message: err.Error()})
		}
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
			h.fail(st, &RemoteError{Code: CodeBadRequest, Message: "incomplete DAG: " + err.Error()})
		} else {
			h.fail(st, remoteError(err))
		}
		return
	}
	h.answer(st, Response{Root: root.String(), Transfer: &ts})
}
