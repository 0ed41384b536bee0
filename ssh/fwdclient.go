package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// ErrFwdNotOffered is matched by the error of [DialFwd] when the node does
// not serve [FwdALPN] (an older node, or one whose ssh service is off): the
// caller falls back to SSH channels ([Dial]).
var ErrFwdNotOffered = errors.New("ssh: the node does not offer " + FwdALPN)

// FwdConfig configures [DialFwd].
type FwdConfig struct {
	// Dialer connects to the node and presents the client's identity; its
	// Key is required (the node refuses anonymous forwarding). Required.
	Dialer *core.Dialer
	// Addr is the node, "[<nodeid>@]host:port". Required.
	Addr string
	// HandshakeTimeout bounds each dial and each header exchange (the
	// node's dial of a target included). Default 30s; negative is invalid.
	HandshakeTimeout time.Duration
	// Logger receives connection losses and re-registered listeners, never
	// a destination. Nil means slog.Default().
	Logger *slog.Logger
}

func (cfg FwdConfig) validate() (FwdConfig, error) {
	var errs []error
	if cfg.Dialer == nil {
		errs = append(errs, errors.New("ssh: fwd config: Dialer: required"))
	} else if cfg.Dialer.Key == nil {
		errs = append(errs, errors.New("ssh: fwd config: Dialer.Key: required"))
	}
	if cfg.Addr == "" {
		errs = append(errs, errors.New("ssh: fwd config: Addr: required"))
	}
	if cfg.HandshakeTimeout < 0 {
		errs = append(errs, errors.New("ssh: fwd config: HandshakeTimeout: negative"))
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, errors.Join(errs...)
}

// FwdClient forwards connections through a node over [FwdALPN], without an
// SSH layer: over QUIC each forwarded connection is one stream of one
// connection (redialled when it drops), over TCP+TLS one connection of its
// own. It offers what [Client] offers for forwarding ([FwdClient.DialContext]
// for -L and SOCKS, [FwdClient.Listen] for -R), with the same errors. Build
// one with [DialFwd]; it is safe for concurrent use. Close it to end its
// goroutines.
type FwdClient struct {
	cfg FwdConfig
	// tcp dials TCP+TLS only, once the node answered over TCP+TLS, so that
	// each forward does not try QUIC first again.
	tcp *core.Dialer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	dialMu sync.Mutex // one dial of the shared QUIC connection at a time

	mu        sync.Mutex
	cur       *fwdClientConn // the QUIC connection; nil: dial on demand
	single    bool           // the node answered over TCP+TLS
	err       error          // why the client ended; nil while it runs
	done      chan struct{}
	listeners map[*FwdListener]struct{}
}

// fwdClientConn is one QUIC connection and the listeners registered on it,
// by the id the node gave each.
type fwdClientConn struct {
	conn      core.Conn
	mu        sync.Mutex
	listeners map[uint32]*FwdListener
}

func (cc *fwdClientConn) listener(id uint32) *FwdListener {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.listeners[id]
}

func (cc *fwdClientConn) setListener(id uint32, l *FwdListener) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if l == nil {
		delete(cc.listeners, id)
	} else {
		cc.listeners[id] = l
	}
}

// DialFwd connects to the node at cfg.Addr over [FwdALPN]. The error
// matches [ErrFwdNotOffered] when the node does not serve it, and
// [ErrRefused] when the node refused the key in the TLS handshake. ctx
// bounds this first connection only. Over TCP+TLS the connection is only
// a probe: every forward dials its own.
func DialFwd(ctx context.Context, cfg FwdConfig) (*FwdClient, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	d := cfg.Dialer
	c := &FwdClient{
		cfg: cfg,
		tcp: &core.Dialer{
			Key: d.Key, KnownNodes: d.KnownNodes, Network: core.NetworkTCP,
			Logger: d.Logger, Resolve: d.Resolve, Via: d.Via, RelayOnly: d.RelayOnly,
			Sessions: d.Sessions, // each forward's connection resumes
		},
		done:      make(chan struct{}),
		listeners: make(map[*FwdListener]struct{}),
	}
	dctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	conn, err := d.Dial(dctx, cfg.Addr, FwdALPN)
	if err != nil {
		return nil, fwdDialError(err)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if _, ok := conn.(core.QUICConn); ok {
		c.cur = c.adopt(conn)
	} else {
		c.single = true
		_ = conn.CloseWithError(core.CodeNoError, "")
	}
	c.wg.Go(c.keep)
	return c, nil
}

// fwdDialError classifies a failed dial.
func fwdDialError(err error) error {
	if core.IsALPNRefused(err) {
		return fmt.Errorf("%w: %w", ErrFwdNotOffered, err)
	}
	return refusal(fmt.Errorf("ssh: fwd: %w", err), nil)
}

// adopt makes conn the client's QUIC connection and accepts the streams
// the node opens on it (remote forwards).
func (c *FwdClient) adopt(conn core.Conn) *fwdClientConn {
	cc := &fwdClientConn{conn: conn, listeners: make(map[uint32]*FwdListener)}
	c.wg.Go(func() {
		// Closing the client ends AcceptStream, and the connection closes
		// here. (A context.AfterFunc on c.ctx stopped by a defer raced
		// with it: the loop could see c.ctx done and stop the AfterFunc
		// before it ran, leaving the connection, and the watch stream
		// keep reads on it, open for ever; Close then waited for ever.)
		defer func() { _ = conn.CloseWithError(core.CodeNoError, "") }()
		for {
			st, err := conn.AcceptStream(c.ctx)
			if err != nil {
				c.checkRefused(nil, conn)
				return
			}
			c.wg.Go(func() { c.forwarded(cc, st) })
		}
	})
	return cc
}

// forwarded takes a stream the node opened for a remote forward.
func (c *FwdClient) forwarded(cc *fwdClientConn, st core.Stream) {
	_ = st.SetReadDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	req, err := readRequest(st, core.FrameLimits{})
	_ = st.SetReadDeadline(time.Time{})
	if err != nil || req.op != fwdForwarded {
		st.Abort(core.CodeProtocol)
		return
	}
	l := cc.listener(req.id)
	if l == nil {
		st.Abort(core.CodeNoError)
		return
	}
	l.deliver(&fwdNetConn{Stream: st, remote: origAddr(req.host, req.port)})
}

// origAddr is the originator of a forwarded connection as the node saw it.
func origAddr(host string, port uint16) net.Addr {
	return &net.TCPAddr{IP: net.ParseIP(host), Port: int(port)}
}

// checkRefused ends the client with ErrRefused when err or the close of
// conn says the node refused the key.
func (c *FwdClient) checkRefused(err error, conn core.Conn) error {
	if err == nil {
		err = net.ErrClosed
	}
	rerr := refusal(err, conn)
	if errors.Is(rerr, ErrRefused) {
		c.end(rerr)
	}
	return rerr
}

// end records why the client ended.
func (c *FwdClient) end(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	ls := c.listeners
	c.listeners = nil
	close(c.done)
	c.mu.Unlock()
	c.cancel()
	for l := range ls {
		l.shut()
	}
}

// Done returns a channel closed once the client has ended: closed, or its
// key refused ([ErrRefused]). [FwdClient.Err] then says why.
func (c *FwdClient) Done() <-chan struct{} { return c.done }

// Err returns why the client ended, or nil while it runs.
func (c *FwdClient) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the client: its connection, every listener and every
// forwarded connection. Closing twice is a no-op.
func (c *FwdClient) Close() error {
	c.end(ErrClientClosed)
	c.wg.Wait()
	return nil
}

// open opens a stream for one request: on the shared QUIC connection
// (dialled again when it dropped), or on a TCP+TLS connection of its own,
// which closing the stream closes.
func (c *FwdClient) open(ctx context.Context) (core.Stream, core.Conn, *fwdClientConn, error) {
	if err := c.Err(); err != nil {
		return nil, nil, nil, err
	}
	for attempt := 0; ; attempt++ {
		cc, own, err := c.conn(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		if own != nil {
			st, err := own.OpenStream(ctx)
			if err != nil {
				_ = own.CloseWithError(core.CodeNoError, "")
				return nil, nil, nil, fmt.Errorf("ssh: fwd: %w", err)
			}
			stop := context.AfterFunc(c.ctx, func() { _ = own.CloseWithError(core.CodeNoError, "") })
			return ownedStream{st, own, stop}, own, nil, nil
		}
		st, err := cc.conn.OpenStream(ctx)
		if err == nil {
			return st, cc.conn, cc, nil
		}
		c.drop(cc)
		if rerr := c.checkRefused(err, cc.conn); errors.Is(rerr, ErrRefused) || attempt > 0 || ctx.Err() != nil {
			return nil, nil, nil, rerr
		}
	}
}

// conn returns the shared QUIC connection, dialling it when there is
// none, or a fresh TCP+TLS connection (own) when the node is reached that
// way.
func (c *FwdClient) conn(ctx context.Context) (cc *fwdClientConn, own core.Conn, err error) {
	c.mu.Lock()
	cur, single := c.cur, c.single
	c.mu.Unlock()
	if single {
		own, err := c.dial(ctx, c.tcp)
		return nil, own, err
	}
	if cur != nil && cur.conn.Context().Err() == nil {
		return cur, nil, nil
	}
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	c.mu.Lock()
	cur = c.cur
	c.mu.Unlock()
	if cur != nil && cur.conn.Context().Err() == nil {
		return cur, nil, nil
	}
	conn, err := c.dial(ctx, c.cfg.Dialer)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := conn.(core.QUICConn); !ok {
		// Auto fell back to TCP+TLS: so be it from now on.
		c.mu.Lock()
		c.single = true
		c.mu.Unlock()
		return nil, conn, nil
	}
	cc = c.adopt(conn)
	c.mu.Lock()
	c.cur = cc
	c.mu.Unlock()
	return cc, nil, nil
}

// dial connects to the node within the handshake timeout.
func (c *FwdClient) dial(ctx context.Context, d *core.Dialer) (core.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := d.Dial(ctx, c.cfg.Addr, FwdALPN)
	if err != nil {
		err = fwdDialError(err)
		if errors.Is(err, ErrRefused) {
			c.end(err)
		}
		return nil, err
	}
	return conn, nil
}

// drop forgets cc once it failed.
func (c *FwdClient) drop(cc *fwdClientConn) {
	c.mu.Lock()
	if c.cur == cc {
		c.cur = nil
	}
	c.mu.Unlock()
	_ = cc.conn.CloseWithError(core.CodeNoError, "")
}

// exchange writes hdr on st and reads the reply, within the handshake
// timeout and ctx; on any failure it aborts st.
func (c *FwdClient) exchange(ctx context.Context, st core.Stream, conn core.Conn, hdr []byte, listen bool) (fwdReply, uint16, uint32, error) {
	stop := context.AfterFunc(ctx, func() { st.Abort(core.CodeShutdown) })
	defer stop()
	_ = st.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if _, err := st.Write(hdr); err != nil {
		return fwdReply{}, 0, 0, c.noReply(ctx, st, conn, err)
	}
	return c.awaitReply(ctx, st, conn, listen)
}

// awaitReply reads the node's reply to the request sent on st, within the
// stream's deadline, which it then clears. A refusal closes st; a refused
// key ends the client.
func (c *FwdClient) awaitReply(ctx context.Context, st core.Stream, conn core.Conn, listen bool) (fwdReply, uint16, uint32, error) {
	rep, port, id, err := readReply(st, listen)
	if err != nil {
		return rep, 0, 0, c.noReply(ctx, st, conn, err)
	}
	_ = st.SetDeadline(time.Time{})
	if rep != replyOK {
		_ = st.Close()
	}
	if rep.detail == detailKeyRefused {
		err := fmt.Errorf("%w: %w", ErrRefused, rep.err())
		c.end(err)
		return rep, 0, 0, err
	}
	return rep, port, id, nil
}

// noReply aborts st, whose request got no reply, and says why.
func (c *FwdClient) noReply(ctx context.Context, st core.Stream, conn core.Conn, err error) error {
	st.Abort(core.CodeShutdown)
	if ctx.Err() != nil {
		return fmt.Errorf("ssh: fwd: %w", context.Cause(ctx))
	}
	return c.checkRefused(fmt.Errorf("ssh: fwd: no reply from the node: %w", err), conn)
}

// keep holds a watch stream open on the node, so that the client learns
// when its connection ends: a revocation (closed with revoked or
// forbidden, or a key refused on the redial) ends the client, as it ends a
// [Client]; any other loss is redialled with backoff, from 1 s doubling to
// 30 s. Over QUIC the stream rides the shared connection; over TCP+TLS it
// has a connection of its own.
func (c *FwdClient) keep() {
	hdr, _ := appendRequest(nil, fwdRequest{op: fwdWatch})
	wait := reconnectMin
	for {
		st, conn, _, err := c.open(c.ctx)
		if err == nil {
			var rep fwdReply
			rep, _, _, err = c.exchange(c.ctx, st, conn, hdr, false)
			if err == nil && rep != replyOK {
				err = rep.err()
			}
			if err == nil {
				wait = reconnectMin
				var buf [64]byte
				for err == nil {
					_, err = st.Read(buf[:])
				}
				st.Abort(core.CodeNoError)
				if c.ctx.Err() == nil {
					err = c.checkRefused(err, conn)
				}
			}
		}
		if c.ctx.Err() != nil || errors.Is(err, ErrRefused) {
			return
		}
		c.cfg.Logger.Info("fwd connection lost; reconnecting", "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, reconnectMax)
	}
}

// DialContext connects to addr ("host:port") through the node: network
// "tcp", "tcp4" or "tcp6" (a host name is resolved by the node, not here).
// When the node refuses, the error is the one [Client.DialContext] gives:
// it matches os.ErrPermission (the policy denied the destination, or the
// identity lacks ssh:forward), syscall.ECONNREFUSED, syscall.EHOSTUNREACH
// or syscall.ENETUNREACH, and unwraps to an *ssh.OpenChannelError of
// golang.org/x/crypto/ssh. The conn has no deadlines; its CloseWrite
// half-closes.
func (c *FwdClient) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	st, conn, hdr, err := c.openConnect(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	rep, _, _, err := c.exchange(ctx, st, conn, hdr, false)
	if err != nil {
		return nil, err
	}
	if rep != replyOK {
		return nil, rep.err()
	}
	return &fwdNetConn{Stream: st, remote: conn.Peer().RemoteAddr}, nil
}

// openConnect opens the stream of a connect request to addr and returns
// it with its connection and the request's header, not yet sent.
func (c *FwdClient) openConnect(ctx context.Context, network, addr string) (core.Stream, core.Conn, []byte, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, nil, nil, fmt.Errorf("ssh: fwd: dial: unsupported network %q", network)
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("ssh: fwd: dial: %w", err)
	}
	hdr, err := appendRequest(nil, fwdRequest{op: fwdConnect, host: host, port: port})
	if err != nil {
		return nil, nil, nil, err
	}
	st, conn, _, err := c.open(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return st, conn, hdr, nil
}

// DialEarly is [FwdClient.DialContext] for a forward whose application
// speaks first (ssh -L): it returns once the request is sent, and what is
// written goes to the node right behind it, saving the round trip that
// DialContext spends waiting for the node's answer. The node reads those
// bytes only after it has connected to addr, and drops them if it refuses;
// the refusal is then the error of the first Read. SOCKS, whose client
// waits for the answer, uses DialContext.
func (c *FwdClient) DialEarly(ctx context.Context, network, addr string) (net.Conn, error) {
	st, conn, hdr, err := c.openConnect(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { st.Abort(core.CodeShutdown) })
	defer stop()
	_ = st.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if _, err := st.Write(hdr); err != nil {
		return nil, c.noReply(ctx, st, conn, err)
	}
	_ = st.SetWriteDeadline(time.Time{})
	return &earlyConn{fwdNetConn: fwdNetConn{Stream: st, remote: conn.Peer().RemoteAddr}, c: c, conn: conn}, nil
}

// earlyConn is a forwarded connection whose reply is still to come: its
// first Read waits for it (within the handshake timeout) and fails with
// the refusal, if any.
type earlyConn struct {
	fwdNetConn
	c    *FwdClient
	conn core.Conn

	once sync.Once
	err  error
}

func (e *earlyConn) Read(p []byte) (int, error) {
	e.once.Do(func() {
		rep, _, _, err := e.c.awaitReply(context.Background(), e.Stream, e.conn, false)
		if err == nil && rep != replyOK {
			err = rep.err()
		}
		e.err = err
	})
	if e.err != nil {
		return 0, e.err
	}
	return e.Stream.Read(p)
}

// splitHostPort splits "host:port" with a port of 0..65535.
func splitHostPort(addr string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", ps, err)
	}
	if len(host) > fwdMaxHost {
		return "", 0, errFwdHost
	}
	return host, uint16(p), nil
}

// fwdNetConn is a forwarded connection: a stream as a net.Conn.
type fwdNetConn struct {
	core.Stream
	remote net.Addr
}

var _ net.Conn = (*fwdNetConn)(nil)

func (c *fwdNetConn) LocalAddr() net.Addr  { return fwdAddr{} }
func (c *fwdNetConn) RemoteAddr() net.Addr { return c.remote }

// fwdAddr is the local address of a forwarded connection.
type fwdAddr struct{}

func (fwdAddr) Network() string { return "alknet" }
func (fwdAddr) String() string  { return FwdALPN }

// ownedStream is the stream of a TCP+TLS connection of its own: ending the
// stream ends the connection.
// The client's end closes it too (stop undoes that).
type ownedStream struct {
	core.Stream
	conn core.Conn
	stop func() bool
}

func (s ownedStream) Close() error {
	s.stop()
	err := s.Stream.Close()
	_ = s.conn.CloseWithError(core.CodeNoError, "")
	return err
}

func (s ownedStream) Abort(code core.ErrorCode) {
	s.stop()
	s.Stream.Abort(code)
	_ = s.conn.CloseWithError(code, "")
}

// Listen asks the node to listen on addr ("host:port", ssh -R) and returns
// a listener whose Accept yields the connections the node forwards, with
// their originator as RemoteAddr. host goes to the node as written:
// "localhost" means its loopback addresses, "" or "*" every interface; the
// node's bind rules decide. Port 0 lets the node pick; Addr reports the
// port. When the connection drops, the listen is asked for again, on the
// same port, with backoff, until Close. Only network "tcp" is supported.
func (c *FwdClient) Listen(network, addr string) (*FwdListener, error) {
	if network != "tcp" {
		return nil, fmt.Errorf("ssh: fwd: listen: unsupported network %q", network)
	}
	host, port, err := splitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("ssh: fwd: listen: %w", err)
	}
	l := &FwdListener{c: c, host: host, port: port, conns: make(chan net.Conn), done: make(chan struct{})}
	ctrl, err := l.register(c.ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		ctrl.stop()
		return nil, c.err
	}
	c.listeners[l] = struct{}{}
	c.mu.Unlock()
	c.wg.Go(func() { l.maintain(ctrl) })
	return l, nil
}

// FwdListener is a remote forward of a [FwdClient]: a listener on the node
// whose connections arrive as streams (QUIC) or claimed connections
// (TCP+TLS). It is safe for concurrent use.
type FwdListener struct {
	c     *FwdClient
	host  string
	port  uint16 // as asked; the bound port once known
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

var _ net.Listener = (*FwdListener)(nil)

// fwdControl is one registration of a listener: its control stream and,
// over QUIC, the connection and id it is registered under.
type fwdControl struct {
	st   core.Stream
	conn core.Conn
	cc   *fwdClientConn // nil over TCP+TLS
	id   uint32
}

func (r *fwdControl) stop() {
	if r.cc != nil {
		r.cc.setListener(r.id, nil)
	}
	r.st.Abort(core.CodeNoError)
}

// register asks the node for the listen.
func (l *FwdListener) register(ctx context.Context) (*fwdControl, error) {
	c := l.c
	hdr, err := appendRequest(nil, fwdRequest{op: fwdListen, host: l.host, port: l.port})
	if err != nil {
		return nil, err
	}
	st, conn, cc, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	rep, port, id, err := c.exchange(ctx, st, conn, hdr, true)
	if err != nil {
		return nil, err
	}
	if rep != replyOK {
		return nil, fmt.Errorf("ssh: fwd: listen: %w", rep.err())
	}
	if l.port == 0 {
		l.port = port // before Listen returns; later registrations ask for it
	}
	r := &fwdControl{st: st, conn: conn, cc: cc, id: id}
	if cc != nil {
		cc.setListener(id, l)
	}
	return r, nil
}

// maintain serves the registration r until it ends (the connection
// dropped), then registers again with backoff, until the listener or the
// client is closed.
func (l *FwdListener) maintain(r *fwdControl) {
	c := l.c
	for {
		stop := context.AfterFunc(c.ctx, r.stop)
		stopL := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-l.done:
				r.stop()
			case <-stopL:
			}
		})
		l.serve(r)
		close(stopL)
		wg.Wait()
		stop()
		r.stop()
		if c.checkRefused(nil, r.conn); c.ctx.Err() != nil || l.closed() {
			return
		}
		c.cfg.Logger.Info("fwd remote forward lost; registering again", "port", l.port)
		wait := reconnectMin
		for {
			t := time.NewTimer(wait)
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-l.done:
				t.Stop()
				return
			case <-t.C:
			}
			var err error
			if r, err = l.register(c.ctx); err == nil {
				c.cfg.Logger.Info("fwd remote forward restored", "port", l.port)
				break
			}
			if errors.Is(err, ErrRefused) || c.ctx.Err() != nil {
				return
			}
			wait = min(2*wait, reconnectMax)
			c.cfg.Logger.Warn("fwd remote forward not restored", "err", err, "retry_in", wait)
		}
	}
}

// serve reads the control stream until it ends: over TCP+TLS each notice
// is claimed on a connection of its own; over QUIC the node writes
// nothing more (its streams arrive through the connection).
func (l *FwdListener) serve(r *fwdControl) {
	c := l.c
	for {
		ticket, orig, port, err := readNotice(r.st)
		if err != nil {
			return
		}
		if r.cc != nil {
			return // a notice on QUIC breaks the protocol
		}
		c.wg.Go(func() { l.claim(ticket, origAddr(orig, port)) })
	}
}

// claim takes the connection of ticket on a new connection.
func (l *FwdListener) claim(ticket [fwdTicketLen]byte, orig net.Addr) {
	c := l.c
	hdr, _ := appendRequest(nil, fwdRequest{op: fwdClaim, ticket: ticket})
	st, conn, _, err := c.open(c.ctx)
	if err != nil {
		c.cfg.Logger.Debug("fwd remote forward: claim failed", "err", err)
		return
	}
	rep, _, _, err := c.exchange(c.ctx, st, conn, hdr, false)
	if err != nil || rep != replyOK {
		c.cfg.Logger.Debug("fwd remote forward: claim refused", "err", err)
		return
	}
	l.deliver(&fwdNetConn{Stream: st, remote: orig})
}

// deliver hands conn to Accept, or closes it once the listener is closed.
func (l *FwdListener) deliver(conn net.Conn) {
	select {
	case l.conns <- conn:
	case <-l.done:
		_ = conn.Close()
	}
}

// Accept waits for the next connection forwarded by the node. After Close,
// or once the client ended, it returns an error matching net.ErrClosed.
// The conn has no deadlines; its CloseWrite half-closes.
func (l *FwdListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.done:
		return nil, fmt.Errorf("ssh: fwd: remote listener port %d: %w", l.port, net.ErrClosed)
	}
}

// Addr returns the address the node listens on: the IP asked for (0.0.0.0
// for a name or every interface) and the bound port.
func (l *FwdListener) Addr() net.Addr {
	ip := net.ParseIP(l.host)
	if ip == nil {
		ip = net.IPv4zero
	}
	return &net.TCPAddr{IP: ip, Port: int(l.port)}
}

// Close cancels the forward on the node and ends Accept. Closing twice is
// a no-op.
func (l *FwdListener) Close() error {
	l.c.mu.Lock()
	delete(l.c.listeners, l)
	l.c.mu.Unlock()
	l.shut()
	return nil
}

func (l *FwdListener) shut() { l.once.Do(func() { close(l.done) }) }

func (l *FwdListener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}
