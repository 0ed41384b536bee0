package http

import (
	"context"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// connInfoKey holds a request's connection: its ALPN and client.
type connInfoKey struct{}

// callerKey holds a request's resolved identity.
type callerKey struct{}

// requestKey holds a request's context, ended when the request is (the
// client went away, the caller was revoked), for work that runs on a
// context of its own (MCP tools).
type requestKey struct{}

// connInfo is what a request knows about its connection.
type connInfo struct {
	alpn string
	peer core.Peer
	conn core.Conn // core's connection: limits and holds
}

func withConn(ctx context.Context, conn core.Conn) context.Context {
	return context.WithValue(ctx, connInfoKey{}, connInfo{alpn: conn.ALPN(), peer: conn.Peer(), conn: conn})
}

func connOf(ctx context.Context) connInfo {
	ci, _ := ctx.Value(connInfoKey{}).(connInfo)
	return ci
}

// Caller returns the identity a request runs as: its bearer token's, else
// the TLS identity of its connection (alknet/http), else nil (anonymous).
// Handlers mounted with [Server.Mount] use it for their own checks. The
// request's context ends within a second once a reload revokes that
// identity or its token expires; a long handler must watch it.
func Caller(ctx context.Context) *core.Identity {
	id, _ := ctx.Value(callerKey{}).(*core.Identity)
	return id
}

// requestCtx is a request's context: the context it runs on, which
// answers callerKey with the caller and requestKey with that context
// itself. One value in place of two context.WithValue layers, which every
// value lookup of the call's deeper contexts walks through.
type requestCtx struct {
	context.Context
	caller *core.Identity
}

func (c *requestCtx) Value(key any) any {
	switch key.(type) {
	case callerKey:
		return c.caller
	case requestKey:
		return c.Context
	}
	return c.Context.Value(key)
}

// bearer returns the request's token and whether it offered credentials
// at all; ok is false for a malformed Authorization header.
func bearer(r *http.Request) (token string, offered, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, found := strings.Cut(h, " ")
		if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", true, false
		}
		return strings.TrimSpace(tok), true, true
	}
	return "", false, true
}

// middleware resolves the caller, enforces the rate limit and body cap,
// and advertises h3 on TCP responses.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ci := connOf(r.Context())
		if ci.alpn == ALPNH2 || ci.alpn == ALPNHTTP1 {
			w.Header()["Alt-Svc"] = s.altSvc.of(r.Host)
		}
		if r.URL.Path == "/healthz" { // liveness: no auth, no limits
			next.ServeHTTP(w, r)
			return
		}
		caller := ci.peer.Identity
		token, offered, ok := bearer(r)
		if offered {
			var id core.Identity
			if ok && s.cfg.Identities != nil {
				id, ok = s.cfg.Identities.ByToken(token)
			} else {
				ok = false
			}
			if !ok {
				s.rejectToken(w, r, token == "")
				return
			}
			caller = &id
		}
		if wait, ok := s.rate.allowFor(caller, ci.peer, r); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeJSON(w, http.StatusTooManyRequests, &call.Error{Code: "RATE_LIMITED", Message: "too many requests", Retryable: true})
			return
		}
		if r.ProtoMajor == 3 {
			// The headers have arrived within ReadHeaderTimeout (serveH3);
			// the body gets ReadTimeout, as net/http gives h2's.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.lim.ReadTimeout))
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.lim.MaxBodyBytes)
		// A request in flight, an event stream waiting for its next
		// event included, keeps the connection from the node's
		// application idle timeout.
		defer core.Hold(ci.conn)()
		// The request lives while its caller stands: a response that
		// outlasts a revocation (an event stream, a long call) ends.
		ctx, release := s.revoker.revocable(r.Context(), caller)
		defer release()
		next.ServeHTTP(w, r.WithContext(&requestCtx{Context: ctx, caller: caller}))
	})
}

// rejectToken answers a request whose bearer token is not accepted (or,
// with malformed, not even a token): 401, counted, logged and kept for the
// dashboard, the token itself nowhere.
func (s *Server) rejectToken(w http.ResponseWriter, r *http.Request, malformed bool) {
	ci := connOf(r.Context())
	s.metrics.authRejects.Inc()
	s.noteReject(r, ci, malformed)
	core.LogAuth(s.logger, core.AuthReject, ci.alpn, ci.peer, nil)
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeJSON(w, http.StatusUnauthorized, call.Errorf(call.CodeForbidden, "bearer token not accepted"))
}

// altSvc advertises h3 on the port the client reached, which serves QUIC
// too.
func altSvc(host string) string {
	port := "443"
	if _, p, err := net.SplitHostPort(host); err == nil && p != "" {
		port = p
	}
	return `h3=":` + port + `"; ma=86400`
}

// altSvcCache keeps the Alt-Svc header of the last Host seen: a client
// sends the same Host on every request, and the value is formatted, and
// its header value slice made, once.
type altSvcCache struct{ last atomic.Pointer[altSvcValue] }

type altSvcValue struct {
	host string
	vals []string // the header's values: altSvc(host), with no room to append in place
}

// of returns the values of the Alt-Svc header for host: []string{altSvc(host)},
// shared by every response to that host; a handler that adds to the
// header appends to a copy (the slice has no spare capacity), and none
// changes it in place.
func (c *altSvcCache) of(host string) []string {
	if p := c.last.Load(); p != nil && p.host == host {
		return p.vals
	}
	v := &altSvcValue{host: host, vals: []string{altSvc(host)}}
	v.vals = v.vals[:1:1]
	c.last.Store(v)
	return v.vals
}

// rateKey is who a request counts against: its identity, else its IP.
func rateKey(caller *core.Identity, peer core.Peer, r *http.Request) string {
	if caller != nil {
		return "id:" + caller.ID
	}
	if ip := peer.RemoteIP(); ip != "-" {
		return "ip:" + ip
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return "ip:" + host
}

// rateLimiter keeps one token bucket per key, forgetting idle ones.
type rateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// rateIdle is how long an unused bucket is kept.
const rateIdle = 10 * time.Minute

func newRateLimiter(perSec float64, burst int) *rateLimiter {
	l := &rateLimiter{limit: rate.Limit(perSec), burst: burst, buckets: make(map[string]*bucket)}
	if perSec < 0 {
		l.limit = rate.Inf
	}
	return l
}

// allowFor is allow for the key of a request (rateKey), found only when
// there is a limit.
func (l *rateLimiter) allowFor(caller *core.Identity, peer core.Peer, r *http.Request) (time.Duration, bool) {
	if l.limit == rate.Inf {
		return 0, true
	}
	return l.allow(rateKey(caller, peer, r))
}

// allow takes a token for key; when none is left it returns how long until
// one is.
func (l *rateLimiter) allow(key string) (time.Duration, bool) {
	if l.limit == rate.Inf {
		return 0, true
	}
	now := time.Now()
	l.mu.Lock()
	if now.Sub(l.sweep) > rateIdle {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > rateIdle {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	l.mu.Unlock()
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return max(d, time.Second), false
	}
	return 0, true
}
