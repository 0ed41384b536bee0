package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// Config configures the call [Handler].
type Config struct {
	// Registry holds the operations served; required.
	Registry *Registry
	// Identities resolves per-request auth tokens; nil refuses every token.
	Identities core.IdentityProvider
	// Peers, if set, makes this node a head: connections whose identity
	// holds [WorkerScope] are attached as workers after their operations are
	// imported, and handlers can route calls to them.
	Peers *Peers
	// MaxFrameBytes caps a frame; default DefaultMaxFrameBytes, at most
	// HardMaxFrameBytes.
	MaxFrameBytes int
	// MaxAnonFrameBytes caps a frame from a peer that is not known yet (no
	// key that resolved, no token accepted on the connection so far):
	// enough for a request carrying a token. Default
	// DefaultMaxAnonFrameBytes, at most MaxFrameBytes.
	MaxAnonFrameBytes int
	// Logger receives the handler's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Handler serves the call protocol on core's endpoint.
type Handler struct {
	srv *server
}

// New validates cfg and returns the handler.
func New(cfg Config) (*Handler, error) {
	srv, err := newServer(cfg.Registry, cfg.Identities, cfg.Peers, cfg.MaxFrameBytes, cfg.Logger)
	if err != nil {
		return nil, err
	}
	switch anon := cfg.MaxAnonFrameBytes; {
	case anon == 0:
		srv.maxAnonFrame = min(DefaultMaxAnonFrameBytes, srv.maxFrame)
	case anon < 0 || anon > srv.maxFrame:
		return nil, fmt.Errorf("call: config: max anonymous frame %d bytes out of range 1..%d", anon, srv.maxFrame)
	default:
		srv.maxAnonFrame = anon
	}
	return &Handler{srv: srv}, nil
}

func newServer(reg *Registry, ids core.IdentityProvider, peers *Peers, maxFrame int, logger *slog.Logger) (*server, error) {
	if reg == nil {
		return nil, errors.New("call: config: a registry is required")
	}
	switch {
	case maxFrame == 0:
		maxFrame = DefaultMaxFrameBytes
	case maxFrame < 0 || maxFrame > HardMaxFrameBytes:
		return nil, fmt.Errorf("call: config: max frame %d bytes out of range 1..%d", maxFrame, HardMaxFrameBytes)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &server{reg: reg, identities: ids, peers: peers, maxFrame: maxFrame, maxAnonFrame: maxFrame, logger: logger}, nil
}

// ALPNs implements core.Handler.
func (h *Handler) ALPNs() []string { return []string{ALPN} }

// AcceptsEarlyData implements core.EarlyDataHandler: a connection's calls
// may arrive as 0-RTT data, of which only replay-safe queries run before
// the handshake completes ([Spec.ReplaySafe]).
func (h *Handler) AcceptsEarlyData() bool { return true }

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Serve implements core.Handler: it serves the peer's calls until the
// connection ends. If the node is a head and the peer a worker, the peer is
// attached while the connection lasts.
func (h *Handler) Serve(ctx context.Context, conn core.Conn) error {
	s := newSession(conn, conn.Peer().Identity, h.srv)
	if err := s.open(ctx, false); err != nil {
		s.shutdown()
		return nil
	}
	// After open: attaching calls the worker, on the stream open takes.
	if h.srv.peers != nil {
		if id := conn.Peer().Identity; id != nil && id.HasScope(WorkerScope) && handshaken(ctx, conn) {
			if s.multi {
				// The head's calls to the worker share a stream.
				s.out = &sharedOut{}
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				// An attached worker waits for calls: its link is not idle.
				defer core.Hold(conn)()
				// It stays attached until its connection ends or the node
				// stops (ctx): a stopping head routes no new call to it and
				// waits only for the calls in flight, not for the link.
				actx, detach := context.WithCancel(s.ctx)
				defer detach()
				defer context.AfterFunc(ctx, detach)()
				h.srv.peers.attach(actx, id.ID, s)
			}()
		}
	}
	s.serve(ctx)
	return nil
}

// handshaken waits for conn's handshake: a worker is attached only on a
// connection whose handshake completed, never on a replay of 0-RTT data.
// It reports false if conn or ctx ended first.
func handshaken(ctx context.Context, conn core.Conn) bool {
	select {
	case <-core.HandshakeComplete(conn):
		return true
	case <-conn.Context().Done():
		return false
	case <-ctx.Done():
		return false
	}
}

// Request is what a handler knows about the call it serves.
type Request struct {
	// ID is the request id: the caller's on the wire, a fresh one for a
	// composed call.
	ID string
	// Parent is the request that composed this one; empty for wire calls.
	Parent string
	// Op is the operation's name.
	Op string
	// Caller is the authenticated caller; nil when anonymous.
	Caller *core.Identity
	// ForwardedFor is the end user a head says it acts for; metadata only.
	ForwardedFor *Forwarded

	srv  *server
	spec Spec
	// handshake is closed once the caller's handshake completed; nil when
	// it had when the call arrived (see [Spec.ReplaySafe]). Calls the
	// handler composes wait for it unless they are replay-safe too.
	handshake <-chan struct{}
}

// waitHandshake waits, for a call this request composes, until the
// caller's handshake completed, unless the target is replay-safe
// (safe): a replay-safe query run from 0-RTT data does nothing a replay
// could repeat harmfully.
func (r *Request) waitHandshake(ctx context.Context, safe bool) error {
	if safe || awaitHandshake(ctx, r.handshake) {
		return nil
	}
	return ctxError(ctx)
}

// awaitHandshake waits until hs is closed (nil: the handshake had
// completed) and reports true, or false if ctx ended first.
func awaitHandshake(ctx context.Context, hs <-chan struct{}) bool {
	if hs == nil {
		return true
	}
	select {
	case <-hs:
		return true
	case <-ctx.Done():
		return false
	}
}

// serveWire answers one call.requested from the wire.
func (srv *server) serveWire(ctx context.Context, s *session, fs *frameStream, id string, p RequestPayload, inf *inflight) {
	name := strings.TrimPrefix(p.OperationID, "/")
	start := time.Now()
	caller := s.caller
	hs := core.HandshakeComplete(s.conn)
	if isClosed(hs) {
		hs = nil
	}
	if p.AuthToken != "" {
		// A token is checked, logged and bound only once the handshake
		// completed: early data may come from a spoofed address, and a
		// replay must not write auth lines (fail2ban reads them) for it.
		if !awaitHandshake(ctx, hs) { // ctx ends with the connection
			return
		}
		hs = nil
		var tok core.Identity
		ok := false
		if srv.identities != nil {
			tok, ok = srv.identities.ByToken(p.AuthToken)
		}
		if !ok {
			core.LogAuth(srv.logger, core.AuthReject, ALPN, s.conn.Peer(), nil)
			s.writeError(fs, id, Errorf(CodeForbidden, "auth token not accepted"))
			return
		}
		if b, isBinder := s.conn.(core.IdentityBinder); isBinder {
			b.BindIdentity(tok) // revoking the token closes the connection
		}
		s.known.Store(true)
		caller = &tok
	}
	send := func(out json.RawMessage) error {
		frame, err := encodeResponded(id, out)
		if err != nil {
			return err
		}
		if inf.credit != nil {
			return inf.credit.send(ctx, fs, frame)
		}
		return fs.write(frame)
	}
	// One terminal answer: the handler's end, or the deadline's when the
	// handler outlives it. The deadline's is written under mu, so that the
	// handler's end, which releases the stream when it returns, waits for
	// it: a stream whose writing ended would lose the answer.
	var (
		mu       sync.Mutex
		answered bool
	)
	early := func(err error) {
		if errors.Is(err, errDetached) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !answered {
			answered = true
			s.writeError(fs, id, asError(err))
		}
	}
	typ, err := srv.dispatch(ctx, dispatchCall{caller: caller, id: id, name: name, input: p.Input, fwd: p.ForwardedFor, inf: inf, early: early, start: start, handshake: hs}, send)
	mu.Lock()
	already := answered
	answered = true
	mu.Unlock()
	if already {
		return
	}
	switch {
	case err == nil && typ == Subscription:
		if frame, e := EncodeEnvelope(TypeCompleted, id, emptyPayload); e == nil {
			_ = fs.write(frame)
		}
	case errors.Is(err, errDetached):
		// Aborted or the connection is gone: nothing more goes on the wire.
	case err != nil:
		s.writeError(fs, id, asError(err))
	}
}

// errDetached ends a call that is no longer on the wire.
var errDetached = errors.New("call: detached from the wire")

// errDeadline is the cause of a request context whose deadline passed.
var errDeadline = errors.New("deadline exceeded")

// run calls the handler under the operation's deadline. It returns when the
// handler does or, if the handler ignores its context, when the context
// ends: the call is then detached and the handler left to finish alone.
// A deadline yields TIMEOUT; an abort or a closed connection errDetached.
// With early (a call from the wire) the handler runs on this goroutine,
// which saves two hand-offs per call; if the context ends first, early is
// told at once what to answer, and run returns only with the handler.
func (srv *server) run(ctx context.Context, op *operation, req *Request, input json.RawMessage, send func(json.RawMessage) error, inf *inflight, early func(error)) error {
	if d := op.spec.deadline(); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, d, errDeadline)
		defer cancel()
	}
	if early != nil {
		stop := context.AfterFunc(ctx, func() { early(srv.ended(ctx, op, req, inf)) })
		err := srv.handle(ctx, op, req, input, send)
		// The handler may see its context end before early is due:
		// then it is answered here, as when it ran on.
		if stop() && ctx.Err() == nil {
			return err
		}
		return srv.ended(ctx, op, req, inf)
	}
	done := make(chan error, 1)
	go func() { done <- srv.handle(ctx, op, req, input, send) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
	}
	if ctx.Err() == nil {
		return err
	}
	return srv.ended(ctx, op, req, inf)
}

// handle calls the handler; a panic is an error.
func (srv *server) handle(ctx context.Context, op *operation, req *Request, input json.RawMessage, send func(json.RawMessage) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			srv.logger.Error("call: handler panicked", "op", req.Op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = errors.New("handler panicked")
		}
	}()
	return op.handler(ctx, req, input, send)
}

// ended detaches a call whose context ended before its handler returned
// and returns what to answer: TIMEOUT for the deadline, else errDetached.
func (srv *server) ended(ctx context.Context, op *operation, req *Request, inf *inflight) error {
	if inf != nil {
		inf.detached.Store(true)
	}
	if errors.Is(context.Cause(ctx), errDeadline) {
		return Errorf(CodeTimeout, "%s: deadline of %v exceeded", req.Op, op.spec.deadline())
	}
	return errDetached
}

// Call runs a local operation on behalf of this request, internal ones
// included, and decodes its single output into out (if not nil). The
// callee sees the same caller, and its access control is checked against
// it; subscriptions cannot be called this way.
func (r *Request) Call(ctx context.Context, op string, in, out any) error {
	o, ok := r.srv.reg.lookup(strings.TrimPrefix(op, "/"))
	if !ok {
		return Errorf(CodeNotFound, "operation not found: %s", op)
	}
	if o.spec.Type == Subscription {
		return Errorf(CodeInvalidOperationType, "%s is a subscription", op)
	}
	if err := o.spec.Access.Check(r.Caller); err != nil {
		return Errorf(CodeForbidden, "%v", err)
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return Errorf(CodeInvalidInput, "encode input: %v", err)
	}
	input, cerr := o.checkInput(raw)
	if cerr != nil {
		return cerr
	}
	if err := r.waitHandshake(ctx, o.spec.ReplaySafe); err != nil {
		return err
	}
	child := &Request{ID: newID(), Parent: r.ID, Op: o.spec.Name, Caller: r.Caller, ForwardedFor: r.ForwardedFor, srv: r.srv, spec: o.spec, handshake: r.handshake}
	var result json.RawMessage
	err = r.srv.run(ctx, o, child, input, func(b json.RawMessage) error {
		if result != nil {
			return fmt.Errorf("call: %s answers once", o.spec.Name)
		}
		result = b
		return nil
	}, nil, nil)
	if errors.Is(err, errDetached) {
		return ctxError(ctx)
	}
	if err != nil {
		return err
	}
	if out != nil && result != nil {
		if err := json.Unmarshal(result, out); err != nil {
			return Errorf(CodeInternal, "decode output of %s: %v", o.spec.Name, err)
		}
	}
	return nil
}
