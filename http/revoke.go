package http

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
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
// removed, disabled or narrowed, or whose token expired. Its goroutine runs
// while something is registered and, once requests stop coming, for one or
// two more intervals (see keep), so an idle server runs nothing. The zero
// value with ids set is ready.
type revoker struct {
	ids    core.IdentityProvider
	logger *slog.Logger
	w      netutil.Watcher

	// The keep-alive watch: registered by the first request, it stands
	// while requests came since the last check, so that a client making
	// one short request after another does not start and stop the
	// watcher's goroutine and ticker with each (a new goroutine and a
	// thread woken per request).
	recent   atomic.Bool // a request came since the keep-alive's last check
	keeping  atomic.Bool // the keep-alive watch is registered
	mu       sync.Mutex
	closed   bool
	stopKeep func()
}

// keep notes a request and registers the keep-alive watch if it is not.
func (r *revoker) keep() {
	r.recent.Store(true)
	if r.keeping.Load() || !r.keeping.CompareAndSwap(false, true) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return // keeping stays set: no keep-alive after close
	}
	r.stopKeep = r.w.Watch(func() bool {
		if r.recent.Swap(false) {
			return true
		}
		// Unset before the watch goes: a request from now on registers
		// a new keep-alive.
		r.keeping.Store(false)
		return false
	}, func() {})
}

// close removes the keep-alive watch for good: the server is done.
func (r *revoker) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.keeping.Store(true)
	if r.stopKeep != nil {
		r.stopKeep()
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
	r.keep()
	ctx, cancel := context.WithCancelCause(ctx)
	stop := r.watch(caller, "request", func() { cancel(errRevoked) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}
