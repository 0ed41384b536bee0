package core

import (
	"errors"
	"fmt"
	"slices"
)

// Router maps ALPNs to handlers. It is built once, before the endpoint
// starts, and never changes; the endpoint advertises exactly its ALPNs.
type Router struct {
	handlers map[string]Handler
	alpns    []string
	list     []Handler // as given, each once
}

// validALPN accepts the printable ASCII protocol names TLS carries, 1 to
// 255 bytes. (A regexp with {1,255} compiled 255 copies of its class at
// every process start: 3.6 ms and 2,000 allocations of every CLI command.)
func validALPN(p string) bool {
	if len(p) == 0 || len(p) > 255 {
		return false
	}
	for i := range len(p) {
		if p[i] < 0x21 || p[i] > 0x7e {
			return false
		}
	}
	return true
}

// NewRouter builds a router from handlers, in order. Two handlers claiming
// the same ALPN is an error wrapping [ErrDuplicateALPN]; so is a handler with
// no ALPN or a malformed one.
func NewRouter(handlers ...Handler) (*Router, error) {
	r := &Router{handlers: make(map[string]Handler), list: handlers}
	var errs []error
	for _, h := range handlers {
		alpns := h.ALPNs()
		if len(alpns) == 0 {
			errs = append(errs, fmt.Errorf("core: handler %T claims no ALPN", h))
		}
		for _, p := range alpns {
			if !validALPN(p) || p == acmeALPN {
				errs = append(errs, fmt.Errorf("core: handler %T: invalid ALPN %q", h, p))
				continue
			}
			if prev, dup := r.handlers[p]; dup {
				errs = append(errs, fmt.Errorf("%w %q: claimed by %T and %T", ErrDuplicateALPN, p, prev, h))
				continue
			}
			r.handlers[p] = h
			r.alpns = append(r.alpns, p)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// ALPNs returns the served protocols in registration order.
func (r *Router) ALPNs() []string { return slices.Clone(r.alpns) }

// Handler returns the handler for alpn.
func (r *Router) Handler(alpn string) (Handler, bool) {
	h, ok := r.handlers[alpn]
	return h, ok
}
