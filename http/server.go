package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/netutil"
)

// ALPN is the alknet protocol carrying HTTP/3 on an alknet connection: the
// client's TLS key is its identity.
const ALPN = "alknet/http"

// Standard ALPNs served with the web certificate, when core has one.
const (
	ALPNH3    = "h3"
	ALPNH2    = "h2"
	ALPNHTTP1 = "http/1.1"
)

// AdminScope grants /metrics and the dashboard.
const AdminScope = "admin"

// MetricsScope grants /metrics only (a Prometheus scraper's token).
const MetricsScope = "metrics"

// Defaults of the [Limits] fields.
const (
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultMaxBodyBytes      = 1 << 20
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultRate              = 50
	DefaultBurst             = 100
	DefaultMaxBatch          = 64
)

// Limits bound what one client can make the server hold. Zero fields take
// the defaults above.
type Limits struct {
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int
	// MaxBodyBytes caps a request body; a larger one is 413.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading the headers (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response; streaming responses (SSE,
	// WebSocket) lift it.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle that long.
	IdleTimeout time.Duration
	// Rate is the requests per second one identity (or, for anonymous
	// callers, one IP address) may make on average; negative: unlimited.
	Rate float64
	// Burst is how many requests may come at once above Rate.
	Burst int
	// MaxBatch caps the calls of one /v1/batch request.
	MaxBatch int
}

func (l Limits) withDefaults() Limits {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	if l.Rate == 0 {
		l.Rate = DefaultRate
	}
	if l.Burst == 0 {
		l.Burst = DefaultBurst
	}
	if l.MaxBatch == 0 {
		l.MaxBatch = DefaultMaxBatch
	}
	return l
}

func (l Limits) validate() error {
	var errs []error
	if l.MaxHeaderBytes < 0 || l.MaxBodyBytes < 0 || l.Burst < 0 || l.MaxBatch < 0 {
		errs = append(errs, errors.New("limits: sizes and counts must not be negative"))
	}
	if l.ReadHeaderTimeout < 0 || l.ReadTimeout < 0 || l.WriteTimeout < 0 || l.IdleTimeout < 0 {
		errs = append(errs, errors.New("limits: timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

// Config configures a [Server].
type Config struct {
	// Registry holds the operations the gateway, MCP and WebSocket serve;
	// required. It is the registry alknet/call serves.
	Registry *call.Registry
	// Peers, if the node is a head, is what X-Alknet-Peer routes to.
	Peers *call.Peers
	// Identities resolves bearer tokens and node keys; nil: every caller is
	// anonymous.
	Identities core.IdentityProvider
	// NodeID names the node in the OpenAPI document and on the dashboard.
	NodeID string
	// Dashboard serves GET / as an HTML status page (see docs/http.md) to
	// the admin scope (and, with TrustLoopback, to clients on loopback);
	// false (the default): / is 404.
	Dashboard bool
	// TrustLoopback also grants /metrics and the dashboard to clients
	// connecting from a loopback address without a credential. False (the
	// default): those pages need a token or node key with the admin scope
	// (or the metrics scope, for /metrics). Loopback is not authentication:
	// every local program, a reverse proxy on the machine and every
	// connection a peer tunnels to the node through its own forwarding
	// come from loopback. Set Forwarded so the last never get this trust;
	// a request with a proxy's header (Forwarded, X-Forwarded-For,
	// X-Forwarded-Host, X-Real-IP) never gets it either.
	TrustLoopback bool
	// Forwarded reports whether a TCP connection from remote was opened by
	// the node's own forwarding (ssh.Server.Forwarded); such a connection
	// never gets loopback trust. Nil: none is told apart.
	Forwarded func(remote netip.AddrPort) bool
	// ALPNs lists every protocol the node serves, for the dashboard; nil
	// lists the server's own.
	ALPNs []string
	// Status, if set, gives the dashboard what the node knows beyond this
	// server: live connections of every ALPN, the other services' auth
	// rejects, the last config reload. Nil: the dashboard counts only this
	// server's connections and rejects.
	Status func() NodeStatus
	// Limits bound resource use.
	Limits Limits
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Server serves one http.Handler on h3, h2, http/1.1 and alknet/http. It is
// a core.Handler; build it with [New], add routes with [Server.Mount]
// before serving.
type Server struct {
	cfg     Config
	lim     Limits
	disp    *call.Dispatcher
	logger  *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	metrics *metrics
	mcp     mcpServers
	rate    *rateLimiter
	altSvc  altSvcCache
	rejects rejectLog // recent auth rejects, for the dashboard
	revoker revoker   // ends the responses of revoked callers
	// mcpSessionOnly, set by tests, answers every MCP request on the SDK's
	// session path, which the direct tools/call path must equal.
	mcpSessionOnly atomic.Bool
	// muxOnly, set by tests, routes every request through the mux, which
	// route's direct path must equal.
	muxOnly atomic.Bool

	tcp   *http.Server  // h2 and http/1.1 on single-stream connections
	h3    *http3.Server // h3 and alknet/http on QUIC connections
	conns *connListener

	quicConns sync.Map // *quic.Conn → its core.Conn, while served

	startOnce    sync.Once
	tcpServed    chan struct{} // closed when s.tcp.Serve, once started, returned
	shutdownOnce sync.Once
}

var _ core.Handler = (*Server)(nil)

// New validates cfg and returns the server.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil {
		return nil, errors.New("http: config: a registry is required")
	}
	if err := cfg.Limits.validate(); err != nil {
		return nil, fmt.Errorf("http: config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	disp, err := call.NewDispatcher(call.Config{Registry: cfg.Registry, Identities: cfg.Identities, Peers: cfg.Peers, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	lim := cfg.Limits.withDefaults()
	s := &Server{
		cfg:       cfg,
		lim:       lim,
		disp:      disp,
		logger:    cfg.Logger,
		mux:       http.NewServeMux(),
		metrics:   newMetrics(cfg.Registry),
		rate:      newRateLimiter(lim.Rate, lim.Burst),
		conns:     newConnListener(),
		tcpServed: make(chan struct{}),
		revoker:   revoker{ids: cfg.Identities, logger: cfg.Logger, w: netutil.Watcher{Interval: revalidateInterval}},
	}

	if err := s.routes(); err != nil {
		return nil, err
	}
	s.handler = s.middleware(http.HandlerFunc(s.route))
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // TLS is core's: the stream is h2 already
	s.tcp = &http.Server{
		Handler:           s.handler,
		Protocols:         protocols,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if sc, ok := c.(*streamConn); ok {
				return withConn(ctx, sc.conn)
			}
			return ctx
		},
	}
	s.h3 = &http3.Server{
		Handler:        s.handler,
		MaxHeaderBytes: lim.MaxHeaderBytes,
		IdleTimeout:    lim.IdleTimeout,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			if v, ok := s.quicConns.Load(c); ok {
				return withConn(ctx, v.(core.Conn))
			}
			return ctx
		},
	}
	return s, nil
}

// ALPNs implements core.Handler.
func (s *Server) ALPNs() []string { return []string{ALPNH3, ALPNH2, ALPNHTTP1, ALPN} }

// Handler returns the server's http.Handler (every route, with auth, rate
// limits and metrics), to serve elsewhere or in tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve implements core.Handler: h3 and alknet/http run HTTP/3 on the QUIC
// connection; h2 and http/1.1 take the connection's one stream.
func (s *Server) Serve(ctx context.Context, conn core.Conn) error {
	alpn := conn.ALPN()
	s.metrics.conns.WithLabelValues(alpn).Inc()
	switch alpn {
	case ALPNH3, ALPN:
		qc, ok := conn.(core.QUICConn)
		if !ok {
			return fmt.Errorf("http: %s needs a QUIC connection", alpn)
		}
		s.quicConns.Store(qc.QUIC(), conn)
		defer s.quicConns.Delete(qc.QUIC())
		// The connection's end, however it came, is not the handler's failure.
		s.serveH3(ctx, qc.QUIC())
		return nil
	default:
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		s.startOnce.Do(func() {
			go func() {
				defer close(s.tcpServed)
				_ = s.tcp.Serve(s.conns)
			}()
		})
		sc := newStreamConn(st, conn, s.metrics)
		if !s.conns.push(sc) {
			st.Abort(core.CodeNoError)
			return nil
		}
		// Not conn.Context(): core ends it on a read deadline, which
		// net/http uses to stop its background read between requests.
		<-sc.closed
		return nil
	}
}

// serveH3 serves HTTP/3 on qc. quic-go's http3 handles each stream, but
// the server accepts the request streams itself so that a request's
// headers must arrive within ReadHeaderTimeout, as net/http bounds them
// on h2 and http/1.1 (http3.Server has no such bound; the middleware then
// gives the body ReadTimeout). Once ctx ends, requests still arriving are
// refused with H3_REQUEST_REJECTED, which tells a client it may retry
// them, and serveH3 returns when the requests in flight are done.
func (s *Server) serveH3(ctx context.Context, qc *quic.Conn) {
	raw, err := s.h3.NewRawServerConn(qc)
	if err != nil {
		return // the connection is gone
	}
	// Control and QPACK streams live as long as the connection, which
	// core closes after Serve returns; they end with it.
	uctx, stopUni := context.WithCancel(context.Background())
	defer stopUni()
	go func() {
		for {
			str, err := qc.AcceptUniStream(uctx)
			if err != nil {
				return
			}
			go raw.HandleUnidirectionalStream(str)
		}
	}()
	var requests sync.WaitGroup
	for {
		str, err := qc.AcceptStream(ctx)
		if err != nil {
			break
		}
		_ = str.SetReadDeadline(time.Now().Add(s.lim.ReadHeaderTimeout))
		requests.Go(func() { raw.HandleRequestStream(str) })
	}
	if ctx.Err() == nil {
		requests.Wait() // the connection ended
		return
	}
	done := make(chan struct{})
	go func() {
		requests.Wait()
		close(done)
	}()
	rctx, stopRejecting := context.WithCancel(context.Background())
	defer stopRejecting()
	go func() {
		for {
			str, err := qc.AcceptStream(rctx)
			if err != nil {
				return
			}
			str.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
			str.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
		}
	}()
	<-done
}

// Shutdown implements core.Shutdowner: the endpoint is stopping. It sends
// HTTP/3 GOAWAY, stops taking h2 and http/1.1 connections and requests, and
// returns when the requests in flight are done or ctx ends; then the
// connections still open are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdownOnce.Do(func() {
		_ = s.conns.Close()
		err = errors.Join(s.h3.Shutdown(ctx), s.tcp.Shutdown(ctx))
		if err != nil {
			_ = s.tcp.Close()
		}
		s.startOnce.Do(func() { close(s.tcpServed) }) // never started
		<-s.tcpServed
		s.revoker.close()
	})
	return err
}

// Close stops the server at once, for a server whose endpoint never ran
// (tests, a failed start). An endpoint shutting down stops it by itself.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.Shutdown(ctx)
	_ = s.h3.Close()
	return s.tcp.Close()
}

// reserved are the paths Mount refuses: the server's own routes.
var reserved = []string{"/v1/", "/mcp", "/openapi.json", "/healthz", "/readyz", "/metrics"}

// Mount serves h under prefix (a path starting and ending in "/", or an
// exact path), behind the same auth, rate limit and metrics as the rest.
// h sees the full path; the caller's identity is [Caller](r.Context()).
// Mount before serving; the server's own paths cannot be taken.
func (s *Server) Mount(prefix string, h http.Handler) (err error) {
	if !strings.HasPrefix(prefix, "/") || prefix == "/" || h == nil {
		return fmt.Errorf("http: mount %q: want a path below / and a handler", prefix)
	}
	for _, r := range reserved {
		if strings.HasPrefix(prefix, r) || strings.HasPrefix(r, prefix) {
			return fmt.Errorf("http: mount %q: %s is the server's own", prefix, r)
		}
	}
	defer func() {
		if r := recover(); r != nil { // ServeMux panics on a conflicting pattern
			err = fmt.Errorf("http: mount %q: %v", prefix, r)
		}
	}()
	s.mux.Handle(prefix, h)
	return nil
}
