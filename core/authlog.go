package core

import (
	"context"
	"log/slog"
)

// AuthResult is the outcome written in an auth log line.
type AuthResult string

// Auth outcomes.
const (
	AuthAccept AuthResult = "accept"
	AuthReject AuthResult = "reject"
)

// LogAuth writes the one fixed, fail2ban-friendly auth line, with its
// attributes always in this order:
//
//	msg=auth result=reject alpn=alknet/ssh remote_ip=203.0.113.5 id=- node=<nodeid|->
//
// Rejections log at Warn, acceptances at Info. id is nil when no identity was
// resolved. Use a logger without connection attributes (a module's configured
// logger), so the line keeps its shape; docs/fail2ban/ matches it.
func LogAuth(l *slog.Logger, result AuthResult, alpn string, p Peer, id *Identity) {
	level := slog.LevelInfo
	if result == AuthReject {
		level = slog.LevelWarn
	}
	l.LogAttrs(context.Background(), level, "auth",
		slog.String("result", string(result)),
		slog.String("alpn", alpn),
		slog.String("remote_ip", p.RemoteIP()),
		slog.String("id", id.String()),
		slog.String("node", p.NodeID.String()),
	)
}
