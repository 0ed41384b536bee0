package core

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// DefaultPort is the port a dial address without one gets: the port of
// [DefaultAddr].
const DefaultPort = "4433"

// ParseAddr splits a dial address "[<nodeid>@]host[:port]"; a host without
// a port gets [DefaultPort]. The NodeID is zero when the address does not
// pin one.
func ParseAddr(s string) (NodeID, string, error) {
	var pin NodeID
	hostport := s
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		id, err := ParseNodeID(s[:at])
		if err != nil {
			return NodeID{}, "", fmt.Errorf("core: address %q: %w", Clip(s), err)
		}
		pin, hostport = id, s[at+1:]
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		if _, err := ParseNodeID(hostport); err == nil {
			return NodeID{}, "", fmt.Errorf("core: address %q is a bare node ID and no resolver is configured: "+
				"dial <nodeid>@host:port, or set [dns] resolvers (or --resolver) to a node that publishes it", Clip(s))
		}
		host := strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
		if _, err := netip.ParseAddr(host); host == "" || strings.ContainsAny(host, "[]/ ") ||
			strings.Count(hostport, ":") == 1 || strings.Contains(host, ":") && err != nil {
			return NodeID{}, "", fmt.Errorf("core: address %q: want [nodeid@]host[:port]", Clip(s))
		}
		hostport = net.JoinHostPort(host, DefaultPort)
	}
	return pin, hostport, nil
}

// Network selects the transports a [Dialer] tries.
type Network string

// Networks a Dialer can use.
const (
	// NetworkAuto tries QUIC, then TCP+TLS if QUIC fails for a reason other
	// than the node's identity (UDP blocked, say). With [Dialer.Paths] it
	// tries TCP+TLS first for nodes where QUIC was bound by loss.
	NetworkAuto Network = ""
	// NetworkQUIC uses QUIC only.
	NetworkQUIC Network = "quic"
	// NetworkTCP uses TCP+TLS only.
	NetworkTCP Network = "tcp"
)

// Dialer connects to alknet nodes, checking each node's key: against the
// NodeID pinned in the address, or else against [KnownNodes]
// (trust-on-first-use). The zero value dials anonymously and only to pinned
// addresses. A Dialer is safe for concurrent use; do not copy it after
// first use.
type Dialer struct {
	// Key is presented as the client's identity; nil dials anonymously.
	Key ed25519.PrivateKey
	// KnownNodes checks and records keys of addresses that pin none. Nil:
	// such dials fail.
	KnownNodes *KnownNodes
	// Network selects QUIC, TCP+TLS or both (default).
	Network Network
	// QUICTimeout bounds a QUIC attempt. Default 3s.
	QUICTimeout time.Duration
	// FallbackDelay is how long a dial with Network auto gives QUIC alone
	// before it starts TCP+TLS beside it, as Happy Eyeballs does for IPv6
	// (RFC 8305); the first handshake to complete wins. Zero means
	// [DefaultFallbackDelay]; negative starts TCP+TLS only once QUIC has
	// failed. A node [Dialer.Paths] remembers for TCP+TLS is dialled the
	// other way round, QUIC starting after 5 s. An early connection
	// ([Dialer.DialEarly]) runs the race after it has been returned, and
	// none with a negative FallbackDelay.
	FallbackDelay time.Duration
	// QUICConfig tunes QUIC; nil uses quic-go's defaults with a 15s
	// keep-alive and larger receive windows ([QUICMaxStreamReceiveWindow]).
	QUICConfig *quic.Config
	// Logger is handed to the connections; nil means slog.Default().
	Logger *slog.Logger
	// Resolve finds how to reach a node, for addresses that are a bare
	// NodeID: it returns routes, each dialled with the NodeID pinned (what
	// it returns is only a hint). The direct ones are tried in order
	// (each within 5 s when a relayed route follows), and 300 ms later, or
	// once they failed, the relayed ones in order beside them; the first
	// connection wins. The dns module's signed self-descriptions are the
	// usual source. Nil: a bare NodeID is not an address.
	Resolve func(ctx context.Context, id NodeID) ([]Route, error)

	// Via, when set, is a head ("[<nodeid>@]host:port") that every Dial
	// goes through ([Dialer.DialVia]); the head is dialled directly.
	Via string
	// RelayOnly keeps dials through a head relayed: without it, a dial
	// over QUIC asks the head for a punch and goes direct when the NATs
	// on the way let it (docs/protocols/relay.md, "Direct paths").
	RelayOnly bool
	// Paths, with Network auto, remembers per node the transport for bulk
	// traffic: each QUIC connection is watched, one bound by random loss
	// records TCP+TLS for its node, as does a dial that TCP+TLS won, and
	// later dials of the node try TCP+TLS first until the entry expires
	// (docs/protocols/core.md, "Transport choice"). Each watch is a
	// goroutine that ends with its connection. Nil: always QUIC first.
	Paths *PathMemory

	// Sessions keeps the session tickets nodes give, so that later dials
	// resume (see [SessionCache]); nil: every dial makes a full handshake.
	// Only [Dialer.DialEarly] sends 0-RTT data.
	Sessions *SessionCache

	punchMu sync.Mutex
	noPunch map[NodeID]time.Time // nodes a punch failed to lately, until when

	certMu  sync.Mutex
	cert    *tls.Certificate
	certKey ed25519.PrivateKey // the Key cert was made for

	spareMu sync.Mutex
	spares  map[string]Conn // see keepSpare
}

// spareTTL is how long a spare connection waits for its Dial.
const spareTTL = 10 * time.Second

// keepSpare keeps c, a TCP+TLS connection that won an early connection's
// race after [Dialer.DialEarly] returned ([earlyFallback]), for the next
// Dial of hostport for alpn: the caller's, which sends again what it sent
// on the early connection. A spare not taken within [spareTTL] is closed.
func (d *Dialer) keepSpare(hostport, alpn string, c Conn) {
	key := hostport + " " + alpn
	d.spareMu.Lock()
	defer d.spareMu.Unlock()
	if old := d.spares[key]; old != nil {
		_ = old.CloseWithError(CodeNoError, "")
	}
	if d.spares == nil {
		d.spares = make(map[string]Conn)
	}
	d.spares[key] = c
	time.AfterFunc(spareTTL, func() {
		if d.takeSpare(hostport, alpn, c) != nil {
			_ = c.CloseWithError(CodeNoError, "")
		}
	})
}

// takeSpare returns the spare connection kept for hostport and alpn, if
// any and not ended; with only set, only if it is that one.
func (d *Dialer) takeSpare(hostport, alpn string, only Conn) Conn {
	key := hostport + " " + alpn
	d.spareMu.Lock()
	defer d.spareMu.Unlock()
	c := d.spares[key]
	if c == nil || only != nil && c != only {
		return nil
	}
	delete(d.spares, key)
	if c.Context().Err() != nil {
		return nil
	}
	return c
}

// Route is one way to reach a node: directly at Addr ("host:port"), or,
// when Via is set, through the head Via ("[<nodeid>@]host:port"), which
// relays to the node ([Dialer.DialVia]); Addr is then unused.
type Route struct {
	Addr string
	Via  string
}

// DefaultFallbackDelay is QUIC's head start over TCP+TLS in a dial with
// Network auto: time for a lost first flight to be sent again (quic-go's
// first probe timeout is about 300 ms before any RTT is known) and to be
// answered on a slow path.
const DefaultFallbackDelay = time.Second

// directTimeout bounds a direct route's dial when a relayed route could
// follow: a node behind NAT publishes addresses nobody can reach, and the
// relay should not wait for the whole dial's time.
const directTimeout = 5 * time.Second

// relayHeadStart is how long a resolved node's direct routes have to
// themselves before its relayed routes start beside them, as Happy
// Eyeballs gives IPv6 a head start (RFC 8305): a node behind NAT publishes
// addresses only its own network reaches, and a client elsewhere should
// not wait out their dial timeouts before trying the head.
const relayHeadStart = 300 * time.Millisecond

// dialResolved dials a node known only by its NodeID along the routes
// Resolve gives, pinned to that NodeID: the direct routes in order, and,
// from relayHeadStart on (or once the direct ones failed), the relayed
// ones in order beside them. The first connection wins; a later one is
// closed.
func (d *Dialer) dialResolved(ctx context.Context, id NodeID, alpn string) (Conn, error) {
	routes, err := d.Resolve(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("core: resolve %s: %w", id, err)
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("core: resolve %s: no addresses", id)
	}
	var direct, relayed []Route
	for _, r := range routes {
		if r.Via != "" {
			relayed = append(relayed, r)
		} else {
			direct = append(direct, r)
		}
	}
	dialDirect := func(ctx context.Context, r Route) (Conn, error) {
		if len(relayed) > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, directTimeout)
			defer cancel()
		}
		return d.dialDirect(ctx, id.String()+"@"+r.Addr, alpn)
	}
	dialRelayed := func(ctx context.Context, r Route) (Conn, error) {
		return d.DialVia(ctx, r.Via, id.String(), alpn)
	}
	switch {
	case len(relayed) == 0:
		return dialInTurn(ctx, direct, dialDirect)
	case len(direct) == 0:
		return dialInTurn(ctx, relayed, dialRelayed)
	}
	c, _, errs := raceDials(ctx, relayHeadStart,
		func(ctx context.Context) (Conn, error) { return dialInTurn(ctx, direct, dialDirect) },
		func(ctx context.Context) (Conn, error) { return dialInTurn(ctx, relayed, dialRelayed) },
		nil)
	if c != nil {
		return c, nil
	}
	return nil, errs.join()
}

// raceDials runs first, and second beside it from headStart on (at once if
// first fails before; only then, for a negative headStart). The first
// connection wins and is returned with which dial made it (0 or 1); the
// other dial is cancelled, and closed should it connect all the same. An
// error for which fatal reports true ends the race at once (fatal may be
// nil) and is the only one returned. With a connection, the errors are
// those of a dial that failed before it (the first, when the second won
// after it failed).
func raceDials(ctx context.Context, headStart time.Duration, first, second func(context.Context) (Conn, error), fatal func(error) bool) (Conn, int, raceErrs) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		c     Conn
		which int
		err   error
	}
	results := make(chan result, 2)
	run := func(which int, dial func(context.Context) (Conn, error)) {
		go func() {
			c, err := dial(ctx)
			results <- result{c, which, err}
		}()
	}
	run(0, first)
	var headStarted <-chan time.Time // never, for a negative headStart
	if headStart >= 0 {
		timer := time.NewTimer(headStart)
		defer timer.Stop()
		headStarted = timer.C
	}
	started, pending := false, 1
	// abandon closes what the dial still running makes, if anything.
	abandon := func() {
		if pending > 0 {
			go func() {
				if o := <-results; o.c != nil {
					_ = o.c.CloseWithError(CodeNoError, "")
				}
			}()
		}
	}
	var errs raceErrs
	for pending > 0 || !started {
		select {
		case <-headStarted:
		case r := <-results:
			pending--
			if r.err == nil {
				abandon()
				return r.c, r.which, errs
			}
			errs[r.which] = r.err
			if fatal != nil && fatal(r.err) || ctx.Err() != nil {
				abandon()
				var only raceErrs
				only[r.which] = r.err
				return nil, 0, only
			}
		}
		if !started {
			started, pending = true, pending+1
			run(1, second)
		}
	}
	return nil, 0, errs
}

// raceErrs are the errors of [raceDials]' first and second dial.
type raceErrs [2]error

// join returns the errors joined, nil for none.
func (e raceErrs) join() error { return errors.Join(e[0], e[1]) }

// as returns one error naming both failures, the first dial's (named
// first) in parentheses after the second's, or the one there is.
func (e raceErrs) as(first string) error {
	switch {
	case e[0] == nil:
		return e[1]
	case e[1] == nil:
		return e[0]
	}
	return fmt.Errorf("%w (%s: %w)", e[1], first, e[0])
}

// dialInTurn dials routes in order until one answers.
func dialInTurn(ctx context.Context, routes []Route, dial func(context.Context, Route) (Conn, error)) (Conn, error) {
	var errs []error
	for _, r := range routes {
		c, err := dial(ctx, r)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// certificate returns the client certificate for d.Key, made once per key.
func (d *Dialer) certificate() (tls.Certificate, error) {
	d.certMu.Lock()
	defer d.certMu.Unlock()
	if d.cert != nil && d.certKey.Equal(d.Key) {
		return *d.cert, nil
	}
	cert, err := NodeCertificate(d.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	d.cert, d.certKey = &cert, d.Key
	return cert, nil
}

// errIdentity marks errors about the node's key, which no fallback fixes.
var errIdentity = errors.New("node identity")

// PinMismatchError reports a node whose key is not the pinned one.
type PinMismatchError struct {
	Addr      string
	Got, Want NodeID
}

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("core: node at %s presented key %s, not the pinned %s", e.Addr, e.Got, e.Want)
}

// Dial connects to addr ("[<nodeid>@]host:port", or a bare NodeID when
// [Dialer.Resolve] or [Dialer.Via] is set) for alpn; with Via set, through
// that head ([Dialer.DialVia]). The returned [Conn]'s Peer().NodeID is
// the node's verified key. The caller closes it.
func (d *Dialer) Dial(ctx context.Context, addr, alpn string) (Conn, error) {
	if d.Via != "" {
		return d.DialVia(ctx, d.Via, addr, alpn)
	}
	if id, err := ParseNodeID(addr); err == nil && d.Resolve != nil {
		return d.dialResolved(ctx, id, alpn)
	}
	return d.dialDirect(ctx, addr, alpn)
}

// dialDirect dials addr ("[<nodeid>@]host:port") itself.
func (d *Dialer) dialDirect(ctx context.Context, addr, alpn string) (Conn, error) {
	pin, hostport, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if pin.IsZero() && d.KnownNodes == nil {
		return nil, fmt.Errorf("core: address %q pins no node ID and no known-nodes file is set; dial <nodeid>@%s", addr, hostport)
	}
	cfg, err := d.tlsConfig(hostport, alpn, pin)
	if err != nil {
		return nil, err
	}
	var c Conn
	var learned func() // what an auto dial's race taught, to remember
	spare := d.takeSpare(hostport, alpn, nil)
	if spare != nil && !pin.IsZero() && spare.Peer().NodeID != pin {
		_ = spare.CloseWithError(CodeNoError, "")
		spare = nil
	}
	switch {
	case spare != nil:
		c = spare
	case d.Network == NetworkQUIC:
		c, err = d.dialQUIC(ctx, hostport, cfg)
	case d.Network == NetworkTCP:
		c, err = d.dialTCP(ctx, hostport, cfg)
	case d.Network == NetworkAuto:
		c, learned, err = d.dialAuto(ctx, pathKey(pin, hostport), hostport, cfg)
	default:
		return nil, fmt.Errorf("core: unknown network %q", d.Network)
	}
	if err != nil {
		return nil, err
	}
	if pin.IsZero() {
		if err := d.KnownNodes.Record(hostport, c.Peer().NodeID); err != nil {
			_ = c.CloseWithError(CodeNoError, "")
			return nil, err
		}
	}
	if learned != nil {
		learned()
	}
	d.watchPath(pathKey(pin, hostport), c)
	return c, nil
}

// dialAuto dials over QUIC and TCP+TLS the node named key at hostport,
// racing them ([raceDials]): TCP+TLS first when [Dialer.Paths] remembers it
// for the node, QUIC beside it from [rememberedTCPHeadStart] on; else QUIC,
// TCP+TLS beside it from [Dialer.FallbackDelay] on. It also returns what
// the race taught, for dialDirect to remember once it keeps the connection
// (nil for nothing). When TCP+TLS won as the second (QUIC failed, or had
// not connected in its head start): that the node is dialled over TCP+TLS
// first for [quicFailedTTL], so that a network that drops UDP costs the
// head start once rather than on every dial. When QUIC won as the second
// after TCP+TLS failed: that the remembered TCP+TLS does not get through
// now. An early dial ([Dialer.DialEarly]) goes out as QUIC's, and when it
// returns before its handshake, the connection runs the rest of the race
// ([earlyFallback]); where TCP+TLS is remembered, QUIC's dial is not early.
func (d *Dialer) dialAuto(ctx context.Context, key, hostport string, cfg *tls.Config) (Conn, func(), error) {
	dials := [2]func(context.Context) (Conn, error){
		func(ctx context.Context) (Conn, error) { return d.dialQUIC(ctx, hostport, cfg) },
		func(ctx context.Context) (Conn, error) { return d.dialTCP(ctx, hostport, cfg) },
	}
	names := [2]string{"quic", "tcp"}
	tcpFirst := d.preferTCP(key)
	if tcpFirst {
		dials[0], dials[1] = dials[1], dials[0]
		names[0], names[1] = names[1], names[0]
	}
	headStart := d.FallbackDelay
	switch {
	case tcpFirst:
		headStart = rememberedTCPHeadStart
	case headStart == 0:
		headStart = DefaultFallbackDelay
	}
	if ed, ok := ctx.Value(earlyKey{}).(earlyDial); ok {
		if tcpFirst || headStart < 0 {
			ctx = context.WithValue(ctx, earlyKey{}, earlyDial{}) // a plain dial
		} else {
			start := time.Now()
			tcpBy, _ := ctx.Deadline()
			ed.fallback = &earlyFallback{
				tcpAt:   start.Add(headStart),
				quicBy:  start.Add(d.quicTimeout()),
				tcpBy:   tcpBy,
				dialTCP: dials[1],
				won: func(logger *slog.Logger, tcp Conn) {
					d.keepSpare(hostport, cfg.NextProtos[0], tcp)
					d.quicTooSlow(logger, key, headStart)
				},
			}
			ctx = context.WithValue(ctx, earlyKey{}, ed)
		}
	}
	c, which, errs := raceDials(ctx, headStart, dials[0], dials[1], raceOver)
	if c == nil {
		return nil, nil, errs.as(names[0])
	}
	switch {
	case which == 0 || d.Paths == nil:
		return c, nil, nil
	case tcpFirst && errs[0] != nil: // not merely slow: it failed
		return c, func() { d.Paths.note(key, NetworkAuto, 0) }, nil
	case tcpFirst:
		return c, nil, nil
	}
	return c, func() { d.quicTooSlow(c.Logger(), key, headStart) }, nil
}

// quicTooSlow remembers that QUIC did not connect to the node named key
// within headStart: its dials try TCP+TLS first for [quicFailedTTL].
func (d *Dialer) quicTooSlow(logger *slog.Logger, key string, headStart time.Duration) {
	if d.Paths == nil {
		return
	}
	d.Paths.note(key, NetworkTCP, quicFailedTTL)
	logger.Info("quic did not connect in time; dials of the node use tcp+tls first for a while",
		"head_start", headStart, "for", quicFailedTTL)
}

// rememberedTCPHeadStart is how long TCP+TLS has alone when the node is
// remembered for it, before QUIC starts beside it. It is long: the memory
// often stands for a path that loses packets, where QUIC is bound by loss
// and TCP+TLS's handshake can need a retransmitted SYN or two (1 s, then
// 2 s more); QUIC joins only where TCP+TLS seems blocked.
const rememberedTCPHeadStart = 5 * time.Second

// quicFailedTTL is how long a node where TCP+TLS won the race is dialled
// over TCP+TLS first: shorter than a loss-bound verdict's [DefaultPathTTL],
// since a second without an answer may also be a moment's outage (a
// network coming up), after which QUIC should get its chance back soon.
const quicFailedTTL = 5 * time.Minute

// isIdentityErr reports an error about the node's key, which no other
// transport fixes.
func isIdentityErr(err error) bool { return errors.Is(err, errIdentity) }

// raceOver reports a dial's error that ends a race of transports: one
// about the node's key, or the node's own refusal of the client (a TLS
// alert for a key it does not accept, an application close), which it
// would give over the other transport too, logging the attempt again. A
// QUIC stack's own refusal (CONNECTION_REFUSED: its accept queue is full)
// does not end it.
func raceOver(err error) bool {
	var te *quic.TransportError
	var ae *quic.ApplicationError
	return isIdentityErr(err) ||
		errors.As(err, &te) && te.Remote && te.ErrorCode.IsCryptoError() ||
		errors.As(err, &ae) && ae.Remote
}

func (d *Dialer) logger() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.Default()
}

// tlsConfig checks the server's key instead of a CA chain. crypto/tls still
// verifies the server's handshake signature against that key, so only the
// key's holder passes. The check is in VerifyConnection, which also runs
// when a session resumes (with the key stored in the session).
func (d *Dialer) tlsConfig(hostport, alpn string, pin NodeID) (*tls.Config, error) {
	host, _, _ := net.SplitHostPort(hostport)
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{alpn},
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: node at %s presented no certificate", errIdentity, hostport)
			}
			id, err := NodeIDFromCertificate(cs.PeerCertificates[0].Raw)
			if err != nil {
				return fmt.Errorf("%w: %w", errIdentity, err)
			}
			if !pin.IsZero() {
				if id != pin {
					return fmt.Errorf("%w: %w", errIdentity, &PinMismatchError{Addr: hostport, Got: id, Want: pin})
				}
				return nil
			}
			if err := d.KnownNodes.Check(hostport, id); err != nil {
				return fmt.Errorf("%w: %w", errIdentity, err)
			}
			return nil
		},
		// crypto/tls asks its session cache under this name (an IP
		// address is never sent as SNI).
		ServerName: host,
	}
	var client NodeID
	if d.Key != nil {
		cert, err := d.certificate()
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
		client, _ = NodeIDFromPublicKey(d.Key.Public().(ed25519.PublicKey))
	}
	if d.Sessions != nil {
		cfg.ClientSessionCache = sessionView{d.Sessions, sessionKey(client, pin, hostport, alpn)}
	}
	return cfg, nil
}

// transportKey marks a context whose QUIC dials go out on a given
// *quic.Transport's socket instead of one of their own: a node's
// registration with its head leaves from the node's listening socket, and
// a client's direct dial after a punch from the socket the head saw
// (docs/protocols/relay.md, "Direct paths").
type transportKey struct{}

// withTransport returns ctx whose QUIC dials use tr.
func withTransport(ctx context.Context, tr *quic.Transport) context.Context {
	return context.WithValue(ctx, transportKey{}, tr)
}

// quicTimeout returns [Dialer.QUICTimeout] or its default.
func (d *Dialer) quicTimeout() time.Duration {
	if d.QUICTimeout == 0 {
		return 3 * time.Second
	}
	return d.QUICTimeout
}

func (d *Dialer) dialQUIC(ctx context.Context, hostport string, cfg *tls.Config) (Conn, error) {
	timeout := d.quicTimeout()
	qcfg := d.QUICConfig
	if qcfg == nil {
		qcfg = defaultDialQUICConfig()
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg = withSessions(cfg, NetworkQUIC)
	var qc *quic.Conn
	var err error
	ed, _ := ctx.Value(earlyKey{}).(earlyDial)
	early := !ed.pin.IsZero()
	if tr, ok := ctx.Value(transportKey{}).(*quic.Transport); ok {
		var raddr *net.UDPAddr
		if raddr, err = net.ResolveUDPAddr("udp", hostport); err == nil {
			dial := tr.Dial
			if early {
				dial = tr.DialEarly
			}
			qc, err = dial(qctx, raddr, cfg, qcfg)
		}
	} else {
		qc, err = dialRoaming(qctx, hostport, cfg, qcfg, early)
	}
	if err != nil {
		return nil, fmt.Errorf("core: quic dial %s: %w", hostport, err)
	}
	select {
	case <-qc.HandshakeComplete():
	default: // early: the node's key is the one the ticket was filed under
		peer := Peer{RemoteAddr: qc.RemoteAddr(), NodeID: ed.pin}
		return newEarlyConn(newQUICConn(qc, peer, d.connLogger(cfg.NextProtos[0], peer)), ed), nil
	}
	cs := qc.ConnectionState().TLS
	peer := Peer{RemoteAddr: qc.RemoteAddr(), NodeID: peerNodeID(cs)}
	return newQUICConn(qc, peer, d.connLogger(cs.NegotiatedProtocol, peer)), nil
}

func (d *Dialer) dialTCP(ctx context.Context, hostport string, cfg *tls.Config) (Conn, error) {
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("core: tcp dial %s: %w", hostport, err)
	}
	return d.clientTLS(ctx, nc, withSessions(cfg, NetworkTCP), hostport)
}

// clientTLS runs the TLS client handshake over nc (TCP, or a relayed
// stream) and returns the single-stream Conn; it closes nc when the
// handshake fails.
func (d *Dialer) clientTLS(ctx context.Context, nc net.Conn, cfg *tls.Config, hostport string) (Conn, error) {
	tc := tls.Client(overTCP(nc), cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("core: tls handshake with %s: %w", hostport, err)
	}
	cs := tc.ConnectionState()
	peer := Peer{RemoteAddr: nc.RemoteAddr(), NodeID: peerNodeID(cs)}
	c := NewStreamConn(newTLSStream(tc), cs.NegotiatedProtocol, peer, d.connLogger(cs.NegotiatedProtocol, peer)).(*singleConn)
	c.client = true
	c.stream.closeClean = nil // a client's Close ends at once
	return c, nil
}

func (d *Dialer) connLogger(alpn string, p Peer) *slog.Logger {
	return d.logger().With("alpn", alpn, "remote_ip", p.RemoteIP(), "node", p.NodeID.ShortString())
}
