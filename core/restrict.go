package core

import (
	"context"
	"log/slog"
)

// Restrict wraps h so that only peers passing ac reach it; others are closed
// with [CodeForbidden] and logged with [LogAuth]. The check uses the identity
// of the TLS client key, so it fits protocols that authenticate at
// connection level. logger receives the auth lines; nil means slog.Default().
func Restrict(h Handler, ac AccessControl, logger *slog.Logger) Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return &restricted{Handler: h, ac: ac, logger: logger}
}

type restricted struct {
	Handler
	ac     AccessControl
	logger *slog.Logger
}

func (r *restricted) Serve(ctx context.Context, c Conn) error {
	p := c.Peer()
	if err := r.ac.Check(p.Identity); err != nil {
		LogAuth(r.logger, AuthReject, c.ALPN(), p, p.Identity)
		return c.CloseWithError(CodeForbidden, r.ac.refusal(err))
	}
	return r.Handler.Serve(ctx, c)
}
