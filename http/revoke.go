package http

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/netutil"
)

// revalidateInterval is how often the identities of live requests are
// checked. core checks its connections twice a second; a request's caller
// may come from a bearer token on a connection core knows as anonymous,
// so core cannot end it.
const revalidateInterval = 250 * time.Millisecond

// errRevoked is the cause of a request context ended because its caller
// no longer stands.
var errRevoked = errors.New("http: credentials revoked")

// revoked reports whether ctx ended because its caller was revoked.
func revoked(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errRevoked) }

// errRevokedCall is what a call whose caller was revoked mid-way answers.
func errRevokedCall() *call.Error { return call.Errorf(call.CodeForbidden, "credentials revoked") }

// revoker is the one check of every long response: each request, and each
// WebSocket, registers its caller with a function that ends it, and a
// [netutil.Watcher] calls the function of each whose identity a reload
// removed, disabled or narrowed, or whose token expired. Requests share
// one watch, which checks them all (a watch of its own per request
// allocated and locked the watcher's map twice a request); it stands while
// requests are in flight and, once they stop coming, for one or two more
// intervals, so that a client making one short request after another does
// not start and stop the watcher's goroutine and ticker with each (a new
// goroutine and a thread woken per request), while an idle server runs
// nothing. The zero value with ids set is ready.
type revoker struct {
	ids    core.IdentityProvider
	logger *slog.Logger
	w      netutil.Watcher

	mu       sync.Mutex
	reqs     map[*watchedReq]struct{} // requests in flight
	watching bool                     // the requests' watch is registered
	recent   bool                     // a request came since the watch's last check
	closed   bool                     // the server is done: the watch does not linger
	stopReqs func()                   // removes the requests' watch
	buf      []*watchedReq            // checkRequests' copy of reqs
}

// watchedReq is a request in flight whose caller may be revoked.
type watchedReq struct {
	caller core.Identity
	cancel context.CancelCauseFunc
}

// checkRequests is the requests' watch: it ends the requests whose caller
// no longer stands, and reports whether the watch should stand on.
func (r *revoker) checkRequests() bool {
	r.mu.Lock()
	qs := r.buf[:0]
	for q := range r.reqs {
		qs = append(qs, q)
	}
	r.buf = qs
	r.mu.Unlock()
	for _, q := range qs {
		if r.ids.Valid(q.caller) {
			continue
		}
		r.mu.Lock()
		_, live := r.reqs[q]
		delete(r.reqs, q)
		r.mu.Unlock()
		if live { // not released meanwhile
			r.logger.Info("http: request revoked", "id", q.caller.ID)
			q.cancel(errRevoked)
		}
	}
	clear(qs)
	r.mu.Lock()
	defer r.mu.Unlock()
	stand := len(r.reqs) > 0 || (r.recent && !r.closed)
	r.recent = false
	if !stand {
		// Unset before the watch goes: a request from now on registers
		// it again.
		r.watching = false
	}
	return stand
}

// close stops the requests' watch lingering: the server is done. Requests
// still in flight stay watched.
func (r *revoker) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.watching && len(r.reqs) == 0 {
		r.watching = false
		r.stopReqs()
	}
}

// watch calls revoke, once and from another goroutine, when id no longer
// stands; stop ends the watch. With no identity (an anonymous caller) or
// no provider there is nothing to revoke and stop does nothing.
func (r *revoker) watch(id *core.Identity, what string, revoke func()) (stop func()) {
	if id == nil || r.ids == nil {
		return func() {}
	}
	caller := *id
	return r.w.Watch(func() bool { return r.ids.Valid(caller) }, func() {
		r.logger.Info("http: "+what+" revoked", "id", caller.ID)
		revoke()
	})
}

// revocable returns ctx, ended with cause errRevoked once caller no longer
// stands, and the function that releases it. An anonymous caller, or a
// server without identities, has nothing to revoke: ctx is returned as it
// is.
func (r *revoker) revocable(ctx context.Context, caller *core.Identity) (context.Context, func()) {
	if caller == nil || r.ids == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	q := &watchedReq{caller: *caller, cancel: cancel}
	r.mu.Lock()
	if r.reqs == nil {
		r.reqs = make(map[*watchedReq]struct{})
	}
	r.reqs[q] = struct{}{}
	r.recent = true
	if !r.watching {
		r.watching = true
		r.stopReqs = r.w.Watch(r.checkRequests, func() {})
	}
	r.mu.Unlock()
	return ctx, func() {
		r.mu.Lock()
		delete(r.reqs, q)
		r.mu.Unlock()
		cancel(nil)
	}
}
