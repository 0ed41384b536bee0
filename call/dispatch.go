package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/core"
)

// Dispatcher runs a registry's operations for callers that reach the node
// through another front door than alknet/call: the HTTP gateway, MCP, or
// anything else that has already authenticated its caller. It applies the
// same rules as the call protocol: internal operations are NOT_FOUND, the
// operation's access control decides, the input is checked against its
// schema, the deadline holds, and every call counts in the operation's
// stats (services/stats and the registry's [Observer]).
type Dispatcher struct {
	srv *server
}

// NewDispatcher validates cfg (Registry is required; Peers, if set, is what
// handlers reach through [Request.CallPeer]) and returns a dispatcher.
func NewDispatcher(cfg Config) (*Dispatcher, error) {
	srv, err := newServer(cfg.Registry, cfg.Identities, cfg.Peers, cfg.MaxFrameBytes, cfg.Logger)
	if err != nil {
		return nil, err
	}
	return &Dispatcher{srv: srv}, nil
}

// Lookup returns the spec of the operation name (one leading "/" is
// ignored) if caller may call it: NOT_FOUND for an unknown or internal
// operation, FORBIDDEN if the access control refuses caller (nil is
// anonymous). The *Error it returns for FORBIDDEN wraps nothing; use
// caller == nil to tell "authenticate first" from "not allowed".
func (d *Dispatcher) Lookup(caller *core.Identity, name string) (Spec, error) {
	op, cerr := d.srv.visible(caller, strings.TrimPrefix(name, "/"))
	if cerr != nil {
		return Spec{}, cerr
	}
	return op.spec, nil
}

// Visible returns the specs of the external operations caller may call,
// sorted by name: what services/list shows it.
func (d *Dispatcher) Visible(caller *core.Identity) []Spec {
	var out []Spec
	for _, s := range d.srv.reg.Specs() {
		if s.Visibility == External && s.Access.Check(caller) == nil {
			out = append(out, s)
		}
	}
	return out
}

// Run calls the operation name as caller with input (JSON; empty or null
// for none) and hands each output to send: once for a query or mutation,
// any number of times for a subscription, whose completion is Run returning
// nil. A failed call returns an *Error. Cancelling ctx abandons the call:
// its context ends and send is no longer called once Run has returned.
// send must not block for long; an error from it ends the call.
func (d *Dispatcher) Run(ctx context.Context, caller *core.Identity, name string, input json.RawMessage, send func(json.RawMessage) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inf := &inflight{cancel: cancel}
	_, err := d.srv.dispatch(ctx, dispatchCall{caller: caller, id: newID(), name: strings.TrimPrefix(name, "/"), input: input, inf: inf, start: time.Now()}, send)
	if errors.Is(err, errDetached) {
		return ctxError(ctx)
	}
	if err != nil {
		return asError(err)
	}
	return nil
}

// Observer is told of every finished call of a registry's external
// operations, whatever front door it came through: for metrics. It must
// be quick and safe for concurrent use.
type Observer func(op string, d time.Duration, failed bool)

// Observe sets the registry's observer; nil removes it.
func (r *Registry) Observe(o Observer) {
	if o == nil {
		r.observer.Store(nil)
		return
	}
	r.observer.Store(&o)
}

// record counts one finished call in the operation's stats and tells the
// observer.
func (r *Registry) record(op *operation, d time.Duration, failed bool) {
	op.stats.record(d, failed)
	if o := r.observer.Load(); o != nil {
		(*o)(op.spec.Name, d, failed)
	}
}

// visible returns the operation name if caller may call it from outside:
// NOT_FOUND for an unknown or internal operation (with a nil operation),
// FORBIDDEN (with the operation) if its access control refuses caller.
func (srv *server) visible(caller *core.Identity, name string) (*operation, *Error) {
	op, ok := srv.reg.lookup(name)
	if !ok || op.spec.Visibility == Internal {
		return nil, Errorf(CodeNotFound, "operation not found: %s", core.Clip(name))
	}
	if err := op.spec.Access.Check(caller); err != nil {
		if caller == nil {
			return op, Errorf(CodeForbidden, "authentication required")
		}
		return op, Errorf(CodeForbidden, "%v", err)
	}
	return op, nil
}

// dispatchCall is one call from outside, as [server.dispatch] takes it.
type dispatchCall struct {
	caller *core.Identity // nil: anonymous
	id     string
	name   string
	input  json.RawMessage
	fwd    *Forwarded
	inf    *inflight   // never nil
	early  func(error) // answers a call its deadline ended; nil: see [server.run]
	start  time.Time
	// handshake is closed once the connection's handshake completed; nil
	// when it had before the call arrived. Until then the request may be
	// a replay of 0-RTT data: only a replay-safe query runs.
	handshake <-chan struct{}
}

// dispatch runs one call from outside (the wire or a [Dispatcher]): the
// lookup, the access and input checks, the handler under the deadline,
// and the stats. It returns the operation's type and nil, errDetached (the
// call was aborted or its connection is gone), or an *Error to answer
// with. send is called for each output while the call is attached.
func (srv *server) dispatch(ctx context.Context, c dispatchCall, send func(json.RawMessage) error) (OpType, error) {
	name, inf := c.name, c.inf
	op, cerr := srv.visible(c.caller, name)
	if op == nil {
		return "", cerr
	}
	if cerr != nil {
		srv.reg.record(op, time.Since(c.start), true)
		return op.spec.Type, cerr
	}
	input, cerr := op.checkInput(c.input)
	if cerr != nil {
		srv.reg.record(op, time.Since(c.start), true)
		return op.spec.Type, cerr
	}
	if !op.spec.ReplaySafe && !awaitHandshake(ctx, c.handshake) {
		return op.spec.Type, errDetached // the connection ended: a replay never completes
	}
	req := &Request{ID: c.id, Op: name, Caller: c.caller, ForwardedFor: c.fwd, srv: srv, spec: op.spec, handshake: c.handshake}
	var sent atomic.Int32
	guarded := func(out json.RawMessage) error {
		if inf.detached.Load() {
			return errDetached
		}
		if op.spec.Type != Subscription && sent.Add(1) > 1 {
			return fmt.Errorf("call: %s is a %s: it answers once", name, op.spec.Type)
		}
		return send(out)
	}
	err := srv.run(ctx, op, req, input, guarded, inf, c.early)
	switch {
	case err == nil && op.spec.Type != Subscription && sent.Load() == 0:
		srv.logger.Error("call: handler returned no output", "op", name)
		err = Errorf(CodeInternal, "operation returned no output")
	case err == nil, errors.Is(err, errDetached):
	default:
		var ce *Error
		if !errors.As(err, &ce) {
			srv.logger.Warn("call: operation failed", "op", name, "err", err)
		}
		err = handlerError(op.spec, err)
	}
	srv.reg.record(op, time.Since(c.start), err != nil)
	return op.spec.Type, err
}

// asError returns err as an *Error; anything else is INTERNAL.
func asError(err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	return Errorf(CodeInternal, "internal error")
}
