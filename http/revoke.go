package http

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
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
// WebSocket, registers its caller with a function that ends it, and while
// any is registered one goroutine checks them all, calling the function of
// each whose identity a reload removed, disabled or narrowed, or whose
// token expired. It starts and stops with the first and last registration,
// so an idle server runs nothing. The zero value with ids set is ready.
type revoker struct {
	ids    core.IdentityProvider
	logger *slog.Logger

	mu      sync.Mutex
	watches map[*watch]struct{}
	quit    chan struct{} // closes to stop the running loop; nil: none runs
}

// watch is one registered caller.
type watch struct {
	id     core.Identity
	what   string // for the log: "request", "WebSocket"
	revoke func()
}

// watch calls revoke, once and from another goroutine, when id no longer
// stands; stop ends the watch. With no identity (an anonymous caller) or
// no provider there is nothing to revoke and stop does nothing.
func (r *revoker) watch(id *core.Identity, what string, revoke func()) (stop func()) {
	if id == nil || r.ids == nil {
		return func() {}
	}
	w := &watch{id: *id, what: what, revoke: revoke}
	r.mu.Lock()
	if r.watches == nil {
		r.watches = make(map[*watch]struct{})
	}
	r.watches[w] = struct{}{}
	if r.quit == nil {
		r.quit = make(chan struct{})
		go r.loop(r.quit)
	}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.watches, w)
		if len(r.watches) == 0 && r.quit != nil {
			close(r.quit)
			r.quit = nil
		}
	}
}

// loop checks the registered callers until quit closes.
func (r *revoker) loop(quit <-chan struct{}) {
	tick := time.NewTicker(revalidateInterval)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case <-tick.C:
			r.check()
		}
	}
}

// check ends every registered caller that no longer stands.
func (r *revoker) check() {
	r.mu.Lock()
	ws := make([]*watch, 0, len(r.watches))
	for w := range r.watches {
		ws = append(ws, w)
	}
	r.mu.Unlock()
	var gone []*watch
	for _, w := range ws {
		if !r.ids.Valid(w.id) {
			gone = append(gone, w)
		}
	}
	if len(gone) == 0 {
		return
	}
	r.mu.Lock()
	fire := gone[:0]
	for _, w := range gone {
		if _, live := r.watches[w]; live { // not stopped meanwhile
			delete(r.watches, w)
			fire = append(fire, w)
		}
	}
	r.mu.Unlock()
	for _, w := range fire {
		r.logger.Info("http: "+w.what+" revoked", "id", w.id.ID)
		w.revoke()
	}
}

// revocable returns ctx, ended with cause errRevoked once caller no longer
// stands, and the function that releases it.
func (r *revoker) revocable(ctx context.Context, caller *core.Identity) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := r.watch(caller, "request", func() { cancel(errRevoked) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}
