package core

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"

	"github.com/alkdev/alknet/core/netutil"
)

// DefaultAddr is the address an endpoint listens on when none is given.
const DefaultAddr = "[::]:4433"

// Config configures an [Endpoint].
type Config struct {
	// Addr is the host:port for both QUIC (UDP) and TCP+TLS. Default
	// DefaultAddr. Port 0 picks a free port that is free on both protocols.
	Addr string
	// Key is the node key; required. Its certificate is presented on every
	// alknet protocol.
	Key ed25519.PrivateKey
	// Router maps ALPNs to handlers; required.
	Router *Router
	// Identities resolves the keys clients present. Nil: every client is
	// anonymous.
	Identities IdentityProvider
	// StandardALPNs are the served protocols that stock clients speak
	// (browsers, curl, kdig: h3, h2, http/1.1, doq, dot): they are offered
	// WebCert, when set, instead of the node certificate, and asked for no
	// client certificate, so browsers show no certificate picker. The
	// caller, who knows its handlers, lists them.
	StandardALPNs []string
	// WebCert, if set, is presented on StandardALPNs, which must not be
	// empty then.
	WebCert *WebCert
	// NoALPN names the ALPN whose handler serves TCP+TLS clients that offer
	// no ALPN at all (many DoT clients); it must be routed. Empty: such
	// connections are closed.
	NoALPN string
	// NoEarlyData refuses 0-RTT data: no handler sees a connection before
	// its handshake completed, and a resumed client's first requests wait
	// a round trip. By default an [EarlyDataHandler] takes QUIC
	// connections whose client sent early data, before the handshake.
	NoEarlyData bool
	// Limits bound resource use; zero fields take [DefaultLimits].
	Limits Limits
	// Logger receives the endpoint's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Endpoint serves a [Router] on one address over QUIC and TCP+TLS.
//
// Its lifecycle follows net/http's Server: [New] validates, [Endpoint.Listen]
// binds the sockets, [Endpoint.Serve] accepts until [Endpoint.Shutdown] or
// [Endpoint.Close]. An endpoint is not reused after it stops.
type Endpoint struct {
	cfg    Config
	nodeID NodeID
	tls    *tls.Config
	logger *slog.Logger

	handshakes handshakeCounts
	punches    punchLimiter           // punches answered for heads (relaypunch.go)
	relayHead  atomic.Pointer[string] // the head ListenVia is registered with now

	listenOnce sync.Once
	listenErr  error
	udp        *net.UDPConn
	tr         *quic.Transport
	ql         *quic.EarlyListener
	tl         net.Listener

	// handlerCtx is every handler's ctx; it ends when shutdown starts.
	handlerCtx    context.Context
	cancelHandler context.CancelFunc

	// knownPool and anonPool bound the frame bytes being received over
	// all known and all anonymous connections; each connection's own
	// budget charges one of them, a known peer's through its identity's
	// pool (idPools, under mu).
	knownPool, anonPool *Budget
	// refusing counts over-limit TCP connections being told so.
	refusing atomic.Int32

	mu      sync.Mutex
	conns   map[*tracked]struct{}
	idPools map[string]*identityPool
	perIP   netutil.IPCount // by source: see Endpoint.source
	total   int
	closed  bool
	done    chan struct{} // closed when shutdown starts

	forceOnce sync.Once
	force     chan struct{} // closed by Close: cut the drain short

	loops    sync.WaitGroup // accept loops and the revalidation ticker
	handlers sync.WaitGroup // one per connection

	shutdownOnce sync.Once
	shutdownErr  error
	shutdownDone chan struct{}
}

// tracked is a live connection and the identities that keep it allowed. It
// counts against the limits until its last owner lets go: the connection
// itself and, once accepted, the goroutine serving it.
type tracked struct {
	conn   Conn
	ip     netip.Addr    // the source it counts against
	budget *Budget       // frame bytes being received; charges a pool
	pool   *identityPool // the known identity's pool budget charges; under Endpoint.mu
	act    activity

	mu   sync.Mutex
	ids  []Identity
	refs int

	// lastAddr is the QUIC client address the revalidation loop saw last
	// (notePathChanges); touched only by that loop.
	lastAddr netip.AddrPort
}

// activity is what the application idle timeout watches on a connection.
type activity struct {
	known atomic.Bool   // the peer resolved to an identity
	open  atomic.Int64  // streams handed to the handler and not closed, plus holds
	moved atomic.Uint64 // bytes through a single-stream connection's stream

	// Touched only by the revalidation loop.
	lastMoved uint64
	idleSince time.Time
}

// acquire adds an owner; it fails once the last owner has let go.
func (t *tracked) acquire() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.refs == 0 {
		return false
	}
	t.refs++
	return true
}

// bind adds id to t's identities, once: a client presenting the same token
// on every call must not grow the list with each.
func (t *tracked) bind(id Identity) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.ids {
		if b.sameGrant(id) {
			return
		}
	}
	t.ids = append(t.ids, id)
}

// invalidIdentity returns the first identity bound to the connection that
// no longer stands in ids, without copying them: the endpoint asks twice a
// second for every connection.
func (t *tracked) invalidIdentity(ids IdentityProvider) (Identity, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range t.ids {
		if !ids.Valid(id) {
			return id, true
		}
	}
	return Identity{}, false
}

// New validates cfg and returns an endpoint. It opens no sockets and starts
// no goroutines.
func New(cfg Config) (*Endpoint, error) {
	var errs []error
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		errs = append(errs, fmt.Errorf("addr %q: %w", cfg.Addr, err))
	}
	if len(cfg.Key) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("key: an Ed25519 node key is required"))
	}
	if cfg.Router == nil || len(cfg.Router.alpns) == 0 {
		errs = append(errs, errors.New("router: no handlers"))
	} else if cfg.NoALPN != "" {
		if _, ok := cfg.Router.Handler(cfg.NoALPN); !ok {
			errs = append(errs, fmt.Errorf("no_alpn: %q is not routed", cfg.NoALPN))
		}
	}
	if cfg.WebCert != nil && len(cfg.StandardALPNs) == 0 {
		errs = append(errs, errors.New("web certificate: no standard ALPNs to present it on"))
	}
	if err := cfg.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("core: endpoint config: %w", err)
	}
	cfg.Limits = cfg.Limits.withDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cert, err := NodeCertificate(cfg.Key)
	if err != nil {
		return nil, err
	}
	nodeID, _ := NodeIDFromPublicKey(cfg.Key.Public().(ed25519.PublicKey))
	hctx, cancel := context.WithCancel(context.Background())
	e := &Endpoint{
		cfg:           cfg,
		nodeID:        nodeID,
		logger:        cfg.Logger,
		handlerCtx:    hctx,
		cancelHandler: cancel,
		knownPool:     NewBudget(cfg.Limits.MaxInflightBytes, nil),
		anonPool:      NewBudget(cfg.Limits.MaxAnonInflightBytes, nil),
		conns:         make(map[*tracked]struct{}),
		idPools:       make(map[string]*identityPool),
		perIP:         netutil.IPCount{Max: cfg.Limits.MaxConnsPerIP},
		done:          make(chan struct{}),
		force:         make(chan struct{}),
		shutdownDone:  make(chan struct{}),
	}
	var verify func(net.Addr) func(tls.ConnectionState) error
	if cfg.Identities != nil {
		verify = e.refuseDisabled
	}
	e.handshakes.logger = cfg.Logger
	e.tls = serverTLSConfig(cert, cfg.WebCert, cfg.Router.alpns, cfg.StandardALPNs, cfg.NoALPN, verify, &e.handshakes)
	return e, nil
}

// refuseDisabled returns the handshake check for a client at remote: a key
// that config disables is refused in the TLS handshake, with the auth line,
// so that the client learns it (a bad_certificate alert, see
// [IsKeyRefused]) instead of being served as anonymous.
func (e *Endpoint) refuseDisabled(remote net.Addr) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		id := peerNodeID(cs)
		if id.IsZero() || !e.cfg.Identities.Disabled(id) {
			return nil
		}
		LogAuth(e.logger, AuthReject, cs.NegotiatedProtocol, Peer{RemoteAddr: remote, NodeID: id}, nil)
		return errKeyDisabled
	}
}

// NodeID returns the endpoint's NodeID.
func (e *Endpoint) NodeID() NodeID { return e.nodeID }

// Handshakes returns how many TLS handshakes of alknet protocols reached
// the client check (refused ones included): full ones, and resumed ones
// (a session ticket, no certificates exchanged).
func (e *Endpoint) Handshakes() (full, resumed uint64) {
	return e.handshakes.full.Load(), e.handshakes.resumed.Load()
}

// Listen binds the UDP and TCP sockets on the same port. Serve calls it if
// it was not called; calling it first lets a caller learn [Endpoint.Addr].
func (e *Endpoint) Listen() error {
	e.listenOnce.Do(func() { e.listenErr = e.listen() })
	return e.listenErr
}

// Addr returns the bound address (the UDP one; TCP has the same port), or
// nil before Listen.
func (e *Endpoint) Addr() net.Addr {
	if e.udp == nil {
		return nil
	}
	return e.udp.LocalAddr()
}

func (e *Endpoint) listen() error {
	lc := &net.ListenConfig{KeepAlive: e.cfg.Limits.KeepAlive}
	udp, tl, err := netutil.ListenSamePort(context.Background(), lc, e.cfg.Addr)
	if err != nil {
		return fmt.Errorf("core: listen on %s: %w", e.cfg.Addr, err)
	}
	e.udp, e.tl = udp, tl
	e.reportUDPBuffers()
	e.tr = &quic.Transport{Conn: e.udp, ConnContext: e.admitQUIC}
	lim := e.cfg.Limits
	qcfg := &quic.Config{
		HandshakeIdleTimeout: lim.HandshakeTimeout,
		MaxIdleTimeout:       lim.IdleTimeout,
		MaxIncomingStreams:   int64(lim.MaxStreamsPerConn),
		// Larger than quic-go's for high-BDP paths (core/quicknobs.go).
		MaxStreamReceiveWindow:     QUICMaxStreamReceiveWindow,
		MaxConnectionReceiveWindow: QUICMaxConnectionReceiveWindow,
		Tracer:                     qlog.DefaultConnectionTracer, // only with $QLOGDIR
		// Tickets allow early data; only an EarlyDataHandler sees a
		// connection before its handshake completed (core/early.go).
		Allow0RTT: !e.cfg.NoEarlyData,
	}
	if lim.KeepAlive > 0 {
		qcfg.KeepAlivePeriod = lim.KeepAlive
	}
	e.ql, err = e.tr.ListenEarly(e.tls, qcfg)
	if err != nil {
		e.tl.Close()
		e.udp.Close()
		return fmt.Errorf("core: quic listen: %w", err)
	}
	return nil
}

// wantUDPBuffer is the socket buffer size quic-go asks for.
const wantUDPBuffer = 7 << 20

// reportUDPBuffers raises the UDP buffers (quic-go would too) and says in the
// log when the kernel limit keeps them small, which costs throughput.
func (e *Endpoint) reportUDPBuffers() {
	_ = e.udp.SetReadBuffer(wantUDPBuffer)
	_ = e.udp.SetWriteBuffer(wantUDPBuffer)
	rcv, snd, err := udpBufferSizes(e.udp)
	if err != nil {
		return
	}
	if rcv < wantUDPBuffer || snd < wantUDPBuffer {
		e.logger.Warn("udp buffers below what QUIC wants; raise net.core.rmem_max and net.core.wmem_max",
			"rcvbuf", rcv, "sndbuf", snd, "want", wantUDPBuffer)
		return
	}
	e.logger.Debug("udp buffers", "rcvbuf", rcv, "sndbuf", snd)
}

// Serve accepts connections until Shutdown or Close, or until ctx ends, in
// which case it shuts down with the drain timeout and returns when that is
// done. It always returns a non-nil error: [ErrEndpointClosed] after a stop.
func (e *Endpoint) Serve(ctx context.Context) error {
	if err := e.Listen(); err != nil {
		if errors.Is(err, ErrEndpointClosed) {
			return ErrEndpointClosed
		}
		return err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrEndpointClosed
	}
	e.loops.Add(3)
	e.mu.Unlock()
	e.logger.Info("listening", "addr", e.Addr().String(), "node", e.nodeID.String(), "alpns", e.cfg.Router.alpns)
	go e.acceptQUIC()
	go e.acceptTCP()
	go e.revalidateLoop()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), e.cfg.Limits.DrainTimeout)
		defer cancel()
		_ = e.Shutdown(sctx)
	case <-e.done:
	}
	e.loops.Wait()
	return ErrEndpointClosed
}

// trackedKey keys a QUIC connection's *tracked in its context.
type trackedKey struct{}

// admitQUIC counts a QUIC connection against the limits before its
// handshake, so refused clients cost no crypto work, and releases it when
// the connection ends however it ends (handshake failure included).
func (e *Endpoint) admitQUIC(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
	t, err := e.admit(e.source(info.RemoteAddr))
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, func() { e.unref(t) })
	return context.WithValue(ctx, trackedKey{}, t), nil
}

func (e *Endpoint) acceptQUIC() {
	defer e.loops.Done()
	for {
		qc, err := e.ql.Accept(context.Background())
		if err != nil {
			return // listener closed
		}
		t, ok := qc.Context().Value(trackedKey{}).(*tracked)
		if !ok || !t.acquire() {
			// Closed already (admitQUIC tracks every accepted connection).
			_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeInternal), "")
			continue
		}
		go e.serveQUIC(t, qc)
	}
}

// serveQUIC dispatches an accepted QUIC connection in the connection's own
// goroutine. (No defer for unref: a panic that run does not contain ends
// the process anyway, and the defer's record would sit under the handler.)
//
// The listener hands connections over as soon as the client's first flight
// is read; all but those an [EarlyDataHandler] takes early wait here for
// the handshake (bounded by the handshake timeout) before anything reads
// what the client sent.
func (e *Endpoint) serveQUIC(t *tracked, qc *quic.Conn) {
	early := e.takesEarly(qc)
	if !early {
		select {
		case <-qc.HandshakeComplete():
		case <-qc.Context().Done(): // the handshake failed
			e.unref(t)
			return
		}
	}
	c, negotiated := e.newQUICConn(qc)
	if early {
		c.Logger().Debug("early data accepted")
	}
	e.dispatch(t, c, negotiated)
	e.unref(t)
}

// newQUICConn wraps an accepted connection with its peer and returns the
// negotiated ALPN. See [Endpoint.handshakeTCP] for why it is never inlined.
//
//go:noinline
func (e *Endpoint) newQUICConn(qc *quic.Conn) (Conn, string) {
	cs := qc.ConnectionState().TLS
	peer, logger := e.peer(qc.RemoteAddr(), peerNodeID(cs), cs.NegotiatedProtocol)
	// The peer's key is all a node reads from its certificate: the parsed
	// certificate (~2.5 KiB) need not live as long as the connection.
	qc.DropPeerCertificates()
	return newQUICConn(qc, peer, logger), cs.NegotiatedProtocol
}

func (e *Endpoint) acceptTCP() {
	defer e.loops.Done()
	for {
		// Out of file descriptors and the like: Accept backs off.
		nc, err := netutil.Accept(e.handlerCtx, e.tl, e.logger.With("net", "tcp"))
		if err != nil {
			return // shutdown closed the listener
		}
		t, err := e.admit(e.source(nc.RemoteAddr()))
		if err != nil {
			e.refuseTCP(nc)
			continue
		}
		go e.serveTCP(t, nc)
	}
}

// serveTCP runs the TLS handshake in the connection's own goroutine, so a
// slow client never blocks the accept loop, then dispatches.
func (e *Endpoint) serveTCP(t *tracked, nc net.Conn) {
	defer e.unref(t)
	c, negotiated, err := e.handshakeTCP(t, nc)
	if err != nil {
		e.logger.Debug("tls handshake failed", "remote_ip", t.ip.String(), "err", err)
		if errors.Is(err, errKeyDisabled) {
			// A resumed handshake is refused before the client's
			// Finished is read: closing at once would reset the
			// connection and destroy the alert that says why.
			e.closeGently(nc, nil)
			return
		}
		nc.Close()
		return
	}
	e.dispatch(t, c, negotiated)
}

// handshakeTCP runs the TLS handshake and wraps the connection with its peer;
// it returns the negotiated ALPN ("" when the client offered none).
//
// It is never inlined: the handshake's locals (the TLS connection state alone
// is hundreds of bytes) would otherwise stay in the frame under the handler
// for the connection's life, and that frame decides whether the runtime can
// shrink an idle connection's stack (it shrinks one using under a quarter of
// it). With them there, an idle TCP+TLS connection kept a 16 KiB stack.
//
//go:noinline
func (e *Endpoint) handshakeTCP(t *tracked, nc net.Conn) (Conn, string, error) {
	ctx, cancel := context.WithTimeout(e.handlerCtx, e.cfg.Limits.HandshakeTimeout)
	defer cancel()
	tc := tls.Server(overTCP(nc), e.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, "", err
	}
	cs := tc.ConnectionState()
	alpn := cmp.Or(cs.NegotiatedProtocol, e.cfg.NoALPN)
	peer, logger := e.peer(nc.RemoteAddr(), peerNodeID(cs), alpn)
	st := movedStream{newTLSStream(tc), &t.act.moved}
	return NewStreamConn(st, alpn, peer, logger), cs.NegotiatedProtocol, nil
}

// peer resolves the presented key and builds the connection logger.
func (e *Endpoint) peer(addr net.Addr, nodeID NodeID, alpn string) (Peer, *slog.Logger) {
	p := Peer{RemoteAddr: addr, NodeID: nodeID}
	if !nodeID.IsZero() && e.cfg.Identities != nil {
		if id, ok := e.cfg.Identities.ByNodeID(nodeID); ok {
			p.Identity = &id
		}
	}
	return p, e.logger.With("alpn", alpn, "remote_ip", p.RemoteIP(), "node", nodeID.ShortString())
}

// dispatch runs the handler for the connection's ALPN and closes the
// connection when it returns. negotiated is the ALPN from the handshake (""
// when a TCP client offered none).
func (e *Endpoint) dispatch(t *tracked, c Conn, negotiated string) {
	if h, wc := e.track(t, c, negotiated); h != nil {
		e.run(h, wc)
		e.finish(c)
	}
}

// finish closes c once its handler returned, lingering on a QUIC connection.
func (e *Endpoint) finish(c Conn) {
	if _, ok := c.(*quicConn); ok {
		e.linger(c)
	}
	_ = c.CloseWithError(CodeNoError, "")
}

// track finds the handler for c's ALPN and tracks c with its budget and
// identity, returning the handler and the Conn it is to receive; or it closes
// c and returns a nil handler. It is never inlined, for the reason given at
// [Endpoint.handshakeTCP]: its locals stay off the stack of the connection's
// goroutine.
//
//go:noinline
func (e *Endpoint) track(t *tracked, c Conn, negotiated string) (Handler, Conn) {
	if negotiated == acmeALPN {
		_ = c.CloseWithError(CodeNoError, "acme done")
		return nil, nil
	}
	h, ok := e.cfg.Router.Handler(c.ALPN())
	if !ok {
		c.Logger().Warn("no handler for alpn; closing")
		_ = c.CloseWithError(CodeRefused, "no handler")
		return nil, nil
	}
	if p := c.Peer(); p.Identity == nil && e.cfg.Identities != nil && e.cfg.Identities.Disabled(p.NodeID) {
		// Disabled between its handshake (which refuses disabled keys)
		// and now: refused all the same, not served as anonymous.
		LogAuth(e.logger, AuthReject, c.ALPN(), p, nil)
		_ = c.CloseWithError(CodeRevoked, "key disabled")
		return nil, nil
	}
	t.conn = c
	t.budget = NewBudget(e.cfg.Limits.MaxAnonConnInflightBytes, e.anonPool)
	t.act.idleSince = time.Now()
	if id := c.Peer().Identity; id != nil {
		e.bindIdentity(t, *id)
	}
	e.mu.Lock()
	e.conns[t] = struct{}{}
	closed := e.closed
	e.mu.Unlock()
	if closed {
		_ = c.CloseWithError(CodeShutdown, "shutting down")
		return nil, nil
	}
	return h, e.wrap(c, t)
}

// shutdownLinger bounds linger once shutdown has started.
const shutdownLinger = time.Second

// linger keeps a QUIC connection open after its handler returned until the
// peer closes it, as the side that read the last answer should: closing
// discards stream data not yet delivered, and QUIC cannot tell when the
// peer has it. It gives up after the idle timeout, or a second into
// shutdown.
func (e *Endpoint) linger(c Conn) {
	idle := time.NewTimer(e.cfg.Limits.IdleTimeout)
	defer idle.Stop()
	select {
	case <-c.Context().Done():
		return
	case <-idle.C:
		return
	case <-e.done:
	}
	grace := time.NewTimer(shutdownLinger)
	defer grace.Stop()
	select {
	case <-c.Context().Done():
	case <-grace.C:
	}
}

// run calls the handler, containing a panic to this connection.
func (e *Endpoint) run(h Handler, c Conn) {
	defer containPanic(c)
	if err := h.Serve(e.handlerCtx, c); err != nil {
		handlerFailed(c, err)
	}
}

// containPanic, deferred, turns a handler's panic into a closed connection.
func containPanic(c Conn) {
	if r := recover(); r != nil {
		c.Logger().Error("handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		_ = c.CloseWithError(CodeInternal, "internal error")
	}
}

// handlerFailed logs a handler's error and closes its connection.
func handlerFailed(c Conn, err error) {
	c.Logger().Warn("handler failed", "err", err)
	_ = c.CloseWithError(CodeInternal, "internal error")
}

// boundConn is the Conn a handler receives: it can bind identities to the
// tracked connection, and it counts the streams it hands out as work in
// flight.
type boundConn struct {
	Conn
	t *tracked
	e *Endpoint
}

// BindIdentity implements [IdentityBinder].
func (b *boundConn) BindIdentity(id Identity) { b.e.bindIdentity(b.t, id) }

// AcceptStream implements [Conn].
func (b *boundConn) AcceptStream(ctx context.Context) (Stream, error) {
	return b.held(b.Conn.AcceptStream(ctx))
}

// OpenStream implements [Conn].
func (b *boundConn) OpenStream(ctx context.Context) (Stream, error) {
	return b.held(b.Conn.OpenStream(ctx))
}

func (b *boundConn) held(s Stream, err error) (Stream, error) {
	if err != nil || !b.MultiStream() { // a single-stream conn counts bytes
		return s, err
	}
	return heldStream{s, b.hold()}, nil
}

// hold counts work in flight until the returned func is called.
func (b *boundConn) hold() func() {
	b.t.act.open.Add(1)
	return sync.OnceFunc(func() { b.t.act.open.Add(-1) })
}

// frameLimits returns the connection's frame limits.
func (b *boundConn) frameLimits() FrameLimits {
	return FrameLimits{Budget: b.t.budget, Grace: b.e.cfg.Limits.FrameGrace, MinRate: b.e.cfg.Limits.FrameMinRate}
}

// boundQUICConn is a boundConn that keeps the QUIC escape hatch.
type boundQUICConn struct {
	*boundConn
	q QUICConn
}

// QUIC implements [QUICConn].
func (b boundQUICConn) QUIC() *quic.Conn { return b.q.QUIC() }

func (e *Endpoint) wrap(c Conn, t *tracked) Conn {
	b := &boundConn{Conn: c, t: t, e: e}
	if q, ok := c.(QUICConn); ok {
		return boundQUICConn{b, q}
	}
	return b
}

// bindIdentity records id as one of t's identities. The first makes t a known
// peer's connection: its budget moves to that identity's pool, within the
// known peers' pool, and it gets the known peers' idle timeout.
func (e *Endpoint) bindIdentity(t *tracked, id Identity) {
	t.bind(id)
	if t.act.known.Swap(true) {
		return
	}
	t.budget.move(e.cfg.Limits.MaxConnInflightBytes, e.joinIdentityPool(t, id.ID))
	if q, ok := t.conn.(QUICConn); ok {
		q.QUIC().SetReceiveQueueLimit(knownPeerReceiveQueue)
	}
}

// identityPool is the in-flight budget the connections of one known
// identity share, between each connection's budget and the known peers'
// pool: so no one peer, however many connections it opens, takes the
// known pool from the others.
type identityPool struct {
	id     string
	budget *Budget
	conns  int // connections charging it; the pool goes with the last
}

// joinIdentityPool makes t one of the connections charging id's pool,
// creating it if t is the first, and returns the pool's budget.
func (e *Endpoint) joinIdentityPool(t *tracked, id string) *Budget {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.idPools[id]
	if p == nil {
		p = &identityPool{id: id, budget: NewBudget(e.cfg.Limits.MaxIdentityInflightBytes, e.knownPool)}
		e.idPools[id] = p
	}
	p.conns++
	t.pool = p
	return p.budget
}

// knownPeerReceiveQueue is how many received packets a known peer's QUIC
// connection queues for quic-go's run loop (quic-go patch 7), as a client's
// does (patch 5): 40 ms of a 300 Mbit/s upload, at most ~1.5 MB. Other
// connections keep quic-go's 256, a bound an anonymous flood on the shared
// socket cannot multiply.
const knownPeerReceiveQueue = 1024

// heldStream is a stream that counts as work in flight on its connection
// until the handler closes or aborts it.
type heldStream struct {
	Stream
	release func()
}

func (s heldStream) Close() error {
	defer s.release()
	return s.Stream.Close()
}

func (s heldStream) Abort(code ErrorCode) {
	s.Stream.Abort(code)
	s.release()
}

// movedStream counts the bytes through a single-stream connection's stream,
// which the application idle timeout watches.
type movedStream struct {
	Stream
	moved *atomic.Uint64
}

func (s movedStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	s.moved.Add(uint64(n))
	return n, err
}

func (s movedStream) Write(p []byte) (int, error) {
	n, err := s.Stream.Write(p)
	s.moved.Add(uint64(n))
	return n, err
}

// Hold marks work in flight on c, such as a request that waits for events
// without moving bytes, so that the application idle timeout
// ([Limits].AppIdleTimeout) does not close c; call the returned func when
// the work ends (it may be called more than once). Streams of a QUIC
// connection count by themselves while open; single-stream connections and
// handlers that serve QUIC through [QUICConn] hold instead. For a Conn not
// served by an [Endpoint] it does nothing.
func Hold(c Conn) (release func()) {
	if b, ok := c.(interface{ hold() func() }); ok {
		return b.hold()
	}
	return func() {}
}

// FrameLimitsOf returns the limits under which a handler reads the frames
// of c: its in-flight budget (an anonymous peer's is smaller) and the frame
// deadline, from the endpoint's [Limits]. A Conn not served by an
// [Endpoint] gets the zero FrameLimits: no budget, no deadline.
func FrameLimitsOf(c Conn) FrameLimits {
	if b, ok := c.(interface{ frameLimits() FrameLimits }); ok {
		return b.frameLimits()
	}
	return FrameLimits{}
}

var errTooMany = errors.New("too many connections")

// source returns the address a connection counts against for
// MaxConnsPerIP: an IPv4 address, or the IPv6 prefix (its first address)
// of IPv6PrefixLen bits, as one host or attacker usually has a whole /64. A
// relayed connection counts against its head's address.
func (e *Endpoint) source(a net.Addr) netip.Addr {
	if ra, ok := a.(RelayAddr); ok { // relayed: counts against its head
		a = ra.Head
	}
	return netutil.Source(a, e.cfg.Limits.IPv6PrefixLen)
}

// maxRefusing bounds the TCP connections being refused gently at once
// (over a limit, or a disabled key); past it they are just closed.
const maxRefusing = 64

// refuseTCP tells an over-limit TCP client why it is refused, with a TLS
// access_denied alert it can print, then closes the connection. Reading
// what the client sent (briefly) lets the alert arrive before the close
// instead of a reset.
func (e *Endpoint) refuseTCP(nc net.Conn) {
	// A fatal access_denied alert record, as a server sends before its
	// ServerHello.
	e.closeGently(nc, []byte{21, 3, 3, 0, 2, 2, 49})
}

// closeGently writes last to nc, lingers (netutil.Linger) for at most a
// second so that the peer reads what was written before the close, and
// closes nc; past maxRefusing such closes at once, it closes nc
// straight away.
func (e *Endpoint) closeGently(nc net.Conn, last []byte) {
	if e.refusing.Add(1) > maxRefusing {
		e.refusing.Add(-1)
		nc.Close()
		return
	}
	e.loops.Add(1)
	go func() {
		defer e.loops.Done()
		defer e.refusing.Add(-1)
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(time.Second))
		if len(last) > 0 {
			if _, err := nc.Write(last); err != nil {
				return
			}
		}
		netutil.Linger(nc, time.Second, 64<<10)
	}()
}

// admit counts a new connection from ip against the limits.
func (e *Endpoint) admit(ip netip.Addr) (*tracked, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrEndpointClosed
	}
	if e.total >= e.cfg.Limits.MaxConns || !e.perIP.Acquire(ip) {
		e.logger.Warn("connection refused: limit reached", "remote_ip", ip.String())
		return nil, errTooMany
	}
	e.total++
	// Counted here, under the lock that shutdown takes to set closed, so no
	// handler is added once shutdown waits.
	e.handlers.Add(1)
	return &tracked{ip: ip, refs: 1}, nil
}

// unref drops an owner of t and releases t when it was the last.
func (e *Endpoint) unref(t *tracked) {
	t.mu.Lock()
	t.refs--
	last := t.refs == 0
	t.mu.Unlock()
	if last {
		e.release(t)
	}
}

// release undoes admit.
func (e *Endpoint) release(t *tracked) {
	e.mu.Lock()
	delete(e.conns, t)
	if p := t.pool; p != nil {
		if p.conns--; p.conns == 0 {
			delete(e.idPools, p.id)
		}
	}
	e.total--
	e.perIP.Release(t.ip)
	e.mu.Unlock()
	e.handlers.Done()
}

// revalidateInterval is how often live connections are checked for expired
// tokens; a reload calls Revalidate at once.
const revalidateInterval = 500 * time.Millisecond

func (e *Endpoint) revalidateLoop() {
	defer e.loops.Done()
	tick := time.NewTicker(revalidateInterval)
	defer tick.Stop()
	// One snapshot a tick, in a slice kept from tick to tick: with
	// thousands of connections the loop would otherwise make garbage
	// twice a second for nothing but its walks.
	var conns []*tracked
	for {
		select {
		case now := <-tick.C:
			conns = e.snapshotInto(conns[:0])
			e.revalidate(conns)
			e.reapIdle(now, conns)
			e.notePathChanges(conns)
			clear(conns) // closed connections are not kept until the next tick
		case <-e.done:
			return
		}
	}
}

// Revalidate closes, with [CodeRevoked], every live connection whose key or
// bound token no longer resolves to the same enabled identity. Call it after
// swapping in a new [Directory]; the endpoint also calls it twice a second
// to catch expiring tokens.
func (e *Endpoint) Revalidate() { e.revalidate(e.snapshot()) }

// revalidate is Revalidate over conns.
func (e *Endpoint) revalidate(conns []*tracked) {
	if e.cfg.Identities == nil {
		return
	}
	var revoked []*tracked
	for _, t := range conns {
		if id, bad := t.invalidIdentity(e.cfg.Identities); bad {
			t.conn.Logger().Info("connection revoked", "id", id.ID)
			revoked = append(revoked, t)
		}
	}
	closeAll(revoked, CodeRevoked, "revoked")
}

// reapIdle closes, with [CodeIdle], the connections that have had nothing
// in flight for their application idle timeout, of conns. Only the
// revalidation loop calls it.
func (e *Endpoint) reapIdle(now time.Time, conns []*tracked) {
	var idle []*tracked
	for _, t := range conns {
		a := &t.act
		timeout := e.cfg.Limits.appIdle(a.known.Load())
		if moved := a.moved.Load(); a.open.Load() > 0 || moved != a.lastMoved {
			a.lastMoved, a.idleSince = moved, now
			continue
		}
		if timeout > 0 && now.Sub(a.idleSince) >= timeout {
			t.conn.Logger().Debug("connection idle; closing", "idle", timeout)
			idle = append(idle, t)
		}
	}
	closeAll(idle, CodeIdle, "idle")
}

// closeAll closes connections in parallel, so one slow close does not hold
// up the rest, and returns when all are closed.
func closeAll(ts []*tracked, code ErrorCode, reason string) {
	if len(ts) == 0 {
		return // the WaitGroup would escape for nothing, twice a second
	}
	var wg sync.WaitGroup
	for _, t := range ts {
		wg.Go(func() { _ = t.conn.CloseWithError(code, reason) })
	}
	wg.Wait()
}

// snapshot returns the live connections.
func (e *Endpoint) snapshot() []*tracked { return e.snapshotInto(nil) }

// snapshotInto appends the live connections to ts.
func (e *Endpoint) snapshotInto(ts []*tracked) []*tracked {
	e.mu.Lock()
	defer e.mu.Unlock()
	ts = slices.Grow(ts, len(e.conns))
	for t := range e.conns {
		ts = append(ts, t)
	}
	return ts
}

// Conns returns how many connections the endpoint's handlers serve.
func (e *Endpoint) Conns() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

// ConnsByALPN returns how many connections the endpoint's handlers serve,
// per negotiated ALPN: a read-only view for status pages. It lists only
// ALPNs with at least one connection.
func (e *Endpoint) ConnsByALPN() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int)
	for t := range e.conns {
		if t.conn != nil {
			out[t.conn.ALPN()]++
		}
	}
	return out
}

// RelayedConns returns how many live connections reached the endpoint
// through a head's relay ([Endpoint.ServeRelayed]).
func (e *Endpoint) RelayedConns() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for t := range e.conns {
		if t.conn == nil {
			continue
		}
		if _, ok := t.conn.Peer().RemoteAddr.(RelayAddr); ok {
			n++
		}
	}
	return n
}

// RelayHead returns the head [Endpoint.ListenVia] is registered with now,
// as it was given, or "" when it is not registered.
func (e *Endpoint) RelayHead() string {
	if h := e.relayHead.Load(); h != nil {
		return *h
	}
	return ""
}

// forceTimeout bounds the wait for handlers after their connections were
// closed; a handler blocked on something else is then left behind.
const forceTimeout = 2 * time.Second

// Shutdown stops accepting, cancels every handler's ctx, and waits for the
// handlers until they return, ctx ends or the drain timeout passes; then it
// closes the connections left with [CodeShutdown] and the sockets. It
// returns ctx.Err() if ctx cut the drain short, and an error naming the
// handlers that did not stop even after their connections closed. Calls
// after the first wait for the first to finish.
func (e *Endpoint) Shutdown(ctx context.Context) error {
	e.shutdownOnce.Do(func() {
		e.shutdownErr = e.shutdown(ctx)
		close(e.shutdownDone)
	})
	<-e.shutdownDone
	return e.shutdownErr
}

// Close stops the endpoint at once, closing every connection; it also cuts
// short a Shutdown in progress.
func (e *Endpoint) Close() error {
	e.forceOnce.Do(func() { close(e.force) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (e *Endpoint) shutdown(ctx context.Context) error {
	// After this no Listen binds anything, and the listeners are stable.
	e.listenOnce.Do(func() { e.listenErr = ErrEndpointClosed })
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	close(e.done)
	if e.ql != nil {
		_ = e.ql.Close()
		_ = e.tl.Close()
	}
	e.cancelHandler()

	drainCtx, endDrain := context.WithTimeout(ctx, e.cfg.Limits.DrainTimeout)
	defer endDrain()
	go func() { // Close cuts the drain short
		select {
		case <-e.force:
			endDrain()
		case <-drainCtx.Done():
		}
	}()
	var shutdowners sync.WaitGroup
	for _, h := range e.cfg.Router.list {
		if sd, ok := h.(Shutdowner); ok {
			shutdowners.Go(func() {
				if err := sd.Shutdown(drainCtx); err != nil && drainCtx.Err() == nil {
					e.logger.Warn("handler shutdown failed", "handler", fmt.Sprintf("%T", h), "err", err)
				}
			})
		}
	}
	drained := make(chan struct{})
	go func() {
		shutdowners.Wait()
		e.handlers.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-drainCtx.Done():
		err = ctx.Err()
	}

	closeAll(e.snapshot(), CodeShutdown, "shutting down")
	hard := time.NewTimer(forceTimeout)
	defer hard.Stop()
	select {
	case <-drained:
	case <-hard.C:
		n := len(e.snapshot())
		e.logger.Error("handlers did not stop after their connections closed", "count", n)
		err = errors.Join(err, fmt.Errorf("core: %d handlers did not stop", n))
	}
	if e.tr != nil {
		_ = e.tr.Close()
		_ = e.udp.Close()
	}
	e.loops.Wait()
	return err
}
