package core

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
)

// Router maps ALPNs to handlers. It is built once, before the endpoint
// starts, and never changes; the endpoint advertises exactly its ALPNs.
type Router struct {
	handlers map[string]Handler
	alpns    []string
	list     []Handler // as given, each once
}

// alpnPattern accepts the printable ASCII protocol names TLS carries.
var alpnPattern = regexp.MustCompile(`^[\x21-\x7e]{1,255}$`)

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
			if !alpnPattern.MatchString(p) || p == acmeALPN {
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
