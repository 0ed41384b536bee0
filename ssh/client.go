package ssh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
)

// clientVersion is the client's SSH identification string.
const clientVersion = "SSH-2.0-alknet"

// Reconnect backoff: the first retry after reconnectMin, doubling up to
// reconnectMax.
const (
	reconnectMin = time.Second
	reconnectMax = 30 * time.Second
)

// ErrClientClosed is returned by a [Client]'s methods once it is closed, or
// once its connection ended without [ClientConfig.Reconnect].
var ErrClientClosed = fmt.Errorf("ssh: client closed: %w", net.ErrClosed)

// ErrRefused is matched by the error a [Client] ends with, and [Dial]
// returns, when the node refused this client's key: SSH public-key
// authentication failed (the key is unknown, disabled, or lacks
// ssh:connect), or the node closed the connection with core.CodeRevoked
// (the key was revoked while connected) or core.CodeForbidden, or refused
// the key in the TLS handshake (disabled; core.IsKeyRefused). Trying
// again would not help, so a reconnecting client stops on it.
var ErrRefused = errors.New("ssh: the node refused this key")

// ClientConfig configures [Dial].
type ClientConfig struct {
	// Dialer connects to the node; it checks the node's key (the NodeID
	// pinned in Addr, or its known-nodes file). Required.
	Dialer *core.Dialer
	// Addr is the node, "[<nodeid>@]host:port". Required.
	Addr string
	// Key authenticates the SSH user (as an ssh-ed25519 key, the same
	// identity as its NodeID). Nil: Dialer.Key, so TLS and SSH present the
	// same node key. One of the two is required.
	Key ed25519.PrivateKey
	// User is the SSH user name: ignored by the node for plain keys (the
	// key decides the identity). Default "alknet".
	User string
	// Reconnect redials when the connection drops, after 1 s, then
	// doubling up to 30 s between attempts, until Close; remote forwards
	// are registered again on each new connection and their listeners keep
	// working. Channels open at the time of the drop are lost. Network
	// errors are retried for ever; a refusal of the key ([ErrRefused])
	// ends the client. False: a dropped connection ends the client.
	Reconnect bool
	// HandshakeTimeout bounds one connection attempt: the alknet dial and
	// the SSH handshake. Default 30s; negative is invalid.
	HandshakeTimeout time.Duration
	// Logger receives connection losses and reconnects, never a
	// destination. Nil means slog.Default().
	Logger *slog.Logger
}

// validate checks cfg and returns a copy with the defaults filled in.
func (cfg ClientConfig) validate() (ClientConfig, error) {
	var errs []error
	if cfg.Dialer == nil {
		errs = append(errs, errors.New("ssh: client config: Dialer: required"))
	} else if cfg.Key == nil {
		cfg.Key = cfg.Dialer.Key
	}
	if cfg.Addr == "" {
		errs = append(errs, errors.New("ssh: client config: Addr: required"))
	}
	if cfg.Dialer != nil && cfg.Key == nil {
		errs = append(errs, errors.New("ssh: client config: Key: required when Dialer.Key is nil"))
	}
	if cfg.HandshakeTimeout < 0 {
		errs = append(errs, errors.New("ssh: client config: HandshakeTimeout: negative"))
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.User == "" {
		cfg.User = "alknet"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, errors.Join(errs...)
}

// Client is an SSH client on an alknet/ssh stream of a node: it opens
// forwarding channels ([Client.DialContext]), sessions ([Client.Session])
// and remote forwards ([Client.Listen]). The node is the one the alknet
// dial verified: the SSH host key must be the node's key, the NodeID of
// the TLS peer. Build one with [Dial]; it is safe for concurrent use. Close
// it to end its goroutines.
type Client struct {
	cfg    ClientConfig
	signer xssh.Signer

	// ctx ends with Close; the supervisor watches it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // asks the supervisor to register forwards

	mu        sync.Mutex
	cur       *clientConn   // nil while reconnecting
	ready     chan struct{} // closed once cur is set or the client ended
	err       error         // why the client ended; nil while it runs
	done      chan struct{} // closed once the client ended
	listeners map[*RemoteListener]struct{}
}

// clientConn is one SSH connection on one alknet connection.
type clientConn struct {
	conn core.Conn
	ssh  *xssh.Client
	// dropped is closed once the client has stopped using the connection
	// (it is no longer current).
	dropped chan struct{}
}

func (cc *clientConn) close() {
	_ = cc.ssh.Close()
	_ = cc.conn.CloseWithError(core.CodeNoError, "")
}

// Dial connects to the node at cfg.Addr over alknet/ssh and logs in with
// the node key. It returns the first connection's error; with
// cfg.Reconnect, later drops are redialled in the background. ctx bounds
// this first connection only.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	signer, err := xssh.NewSignerFromKey(cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("ssh: client key: %w", err)
	}
	c := &Client{
		cfg:       cfg,
		signer:    signer,
		kick:      make(chan struct{}, 1),
		ready:     make(chan struct{}),
		done:      make(chan struct{}),
		listeners: make(map[*RemoteListener]struct{}),
	}
	cc, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.cur = cc
	close(c.ready)
	c.wg.Go(func() { c.supervise(cc) })
	return c, nil
}

// connect dials the node, opens a stream and runs the SSH handshake on it,
// accepting only the node's own key as host key.
func (c *Client) connect(ctx context.Context) (*clientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := c.cfg.Dialer.Dial(ctx, c.cfg.Addr, ALPN)
	if err != nil {
		return nil, refusal(fmt.Errorf("ssh: %w", err), nil)
	}
	cc, err := c.handshake(ctx, conn)
	if err != nil {
		_ = conn.CloseWithError(core.CodeNoError, "")
		return nil, refusal(err, conn)
	}
	return cc, nil
}

// refusal returns err wrapped with ErrRefused when it, or the close of
// conn (nil: none), says the node refused the key; else err unchanged.
func refusal(err error, conn core.Conn) error {
	// x/crypto/ssh has no error type for a failed login, only this
	// message (its own tests match it too).
	if strings.Contains(err.Error(), "ssh: unable to authenticate") {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if code, ok := closeCode(err, conn); ok {
		return fmt.Errorf("%w (closed: %v): %w", ErrRefused, code, err)
	}
	if core.IsKeyRefused(err) || (conn != nil && core.IsKeyRefused(context.Cause(conn.Context()))) {
		return fmt.Errorf("%w (refused in the TLS handshake): %w", ErrRefused, err)
	}
	return err
}

// closeCode reports the code the node closed the connection with when it is
// a refusal (revoked or forbidden), found in err or in conn's close.
func closeCode(err error, conn core.Conn) (core.ErrorCode, bool) {
	causes := []error{err}
	if conn != nil {
		causes = append(causes, context.Cause(conn.Context()))
	}
	for _, cause := range causes {
		if ce, ok := core.AsCloseError(cause); ok && ce.Remote {
			switch ce.Code {
			case core.CodeRevoked, core.CodeForbidden:
				return ce.Code, true
			}
		}
	}
	return 0, false
}

// handshake runs the SSH client handshake on a new stream of conn.
func (c *Client) handshake(ctx context.Context, conn core.Conn) (*clientConn, error) {
	hostKey, err := xssh.NewPublicKey(conn.Peer().NodeID.PublicKey())
	if err != nil {
		return nil, fmt.Errorf("ssh: node key: %w", err)
	}
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("ssh: open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { st.Abort(core.CodeShutdown) })
	defer stop()
	nc := newStreamConn(st, conn.Peer().RemoteAddr)
	sc, chans, reqs, err := xssh.NewClientConn(nc, c.cfg.Addr, &xssh.ClientConfig{
		User:            c.cfg.User,
		Auth:            []xssh.AuthMethod{xssh.PublicKeys(c.signer)},
		HostKeyCallback: xssh.FixedHostKey(hostKey),
		ClientVersion:   clientVersion,
	})
	if err != nil {
		st.Abort(core.CodeShutdown)
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, fmt.Errorf("ssh: handshake: %w", err)
	}
	return &clientConn{conn: conn, ssh: xssh.NewClient(sc, chans, reqs), dropped: make(chan struct{})}, nil
}

// supervise watches the connection: it registers remote forwards on it,
// and when it drops either redials (Reconnect) or ends the client.
func (c *Client) supervise(cc *clientConn) {
	for {
		c.maintain(cc)
		cc.close()
		if c.ctx.Err() != nil {
			c.end(ErrClientClosed)
			close(cc.dropped)
			return
		}
		lost := fmt.Errorf("ssh: connection lost: %w", net.ErrClosed)
		if code, ok := closeCode(nil, cc.conn); ok {
			lost = fmt.Errorf("%w (closed: %v): %w", ErrRefused, code, lost)
			c.cfg.Logger.Error("ssh connection closed by the node: this key was refused", "code", code.String())
			c.end(lost)
			close(cc.dropped)
			return
		}
		if !c.cfg.Reconnect {
			c.cfg.Logger.Info("ssh connection lost")
			c.end(lost)
			close(cc.dropped)
			return
		}
		c.mu.Lock()
		c.cur, c.ready = nil, make(chan struct{})
		c.mu.Unlock()
		close(cc.dropped)
		var err error
		if cc, err = c.redial(); cc == nil {
			c.end(err)
			return
		}
		c.mu.Lock()
		c.cur = cc
		close(c.ready)
		c.mu.Unlock()
	}
}

// maintain returns once cc ended or the client is closed. Meanwhile it
// registers on cc every remote forward that is not yet, retrying the
// failed ones with backoff.
func (c *Client) maintain(cc *clientConn) {
	ended := make(chan struct{})
	c.wg.Go(func() {
		_ = cc.ssh.Wait()
		close(ended)
	})
	retry := time.NewTimer(0)
	defer retry.Stop()
	backoff := reconnectMin
	for {
		select {
		case <-ended:
			return
		case <-c.ctx.Done():
			return
		case <-c.kick:
		case <-retry.C:
		}
		if c.register(cc) {
			backoff = reconnectMin
			continue
		}
		retry.Reset(backoff)
		backoff = min(2*backoff, reconnectMax)
	}
}

// register asks cc for every remote forward not on it yet, reporting
// whether all are now.
func (c *Client) register(cc *clientConn) bool {
	c.mu.Lock()
	var todo []*RemoteListener
	for l := range c.listeners {
		todo = append(todo, l)
	}
	c.mu.Unlock()
	ok := true
	for _, l := range todo {
		if l.on() == cc {
			continue
		}
		inner, err := cc.ssh.Listen("tcp", l.hostport)
		if err != nil {
			c.cfg.Logger.Warn("ssh remote forward not restored", "listen", l.hostport, "err", err)
			ok = false
			continue
		}
		c.attach(l, cc, inner)
		c.cfg.Logger.Info("ssh remote forward restored", "listen", l.hostport)
	}
	return ok
}

// redial connects again with backoff. It gives up, returning why, once the
// client is closed (ErrClientClosed) or the node refused the key
// (ErrRefused).
func (c *Client) redial() (*clientConn, error) {
	c.cfg.Logger.Info("ssh connection lost; reconnecting")
	wait := reconnectMin
	for {
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil, ErrClientClosed
		case <-t.C:
		}
		cc, err := c.connect(c.ctx)
		if err == nil {
			c.cfg.Logger.Info("ssh reconnected")
			return cc, nil
		}
		if c.ctx.Err() != nil {
			return nil, ErrClientClosed
		}
		if errors.Is(err, ErrRefused) {
			c.cfg.Logger.Error("ssh reconnect refused: this key was refused; not retrying", "err", err)
			return nil, err
		}
		wait = min(2*wait, reconnectMax)
		c.cfg.Logger.Warn("ssh reconnect failed", "err", err, "retry_in", wait)
	}
}

// end records why the client ended and closes its remote listeners.
func (c *Client) end(err error) {
	c.mu.Lock()
	if c.cur == nil {
		close(c.ready)
	}
	c.cur, c.err = nil, err
	ls := c.listeners
	c.listeners = nil
	close(c.done)
	c.mu.Unlock()
	for l := range ls {
		l.shut()
	}
}

// Done returns a channel closed once the client has ended: closed, its
// connection lost without [ClientConfig.Reconnect], or its key refused
// ([ErrRefused]). [Client.Err] then says why.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client ended (matching [ErrClientClosed], net.ErrClosed
// or [ErrRefused]), or nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// current returns the live connection, waiting while the client
// reconnects, until ctx ends.
func (c *Client) current(ctx context.Context) (*clientConn, error) {
	for {
		c.mu.Lock()
		cur, ready, err := c.cur, c.ready, c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if cur != nil {
			return cur, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh: waiting for the connection: %w", context.Cause(ctx))
		}
	}
}

// DialContext connects to addr through the node: network "tcp", "tcp4" or
// "tcp6" opens a direct-tcpip channel to "host:port" (a host name is
// resolved by the node, not here), "unix" a direct-streamlocal channel to
// a socket path. While the client reconnects it waits, until ctx ends.
// When the node refuses, the error matches os.ErrPermission (its policy
// denied the destination), syscall.ECONNREFUSED, syscall.EHOSTUNREACH or
// syscall.ENETUNREACH (it could not connect, for that reason) and unwraps
// to the *ssh.OpenChannelError of golang.org/x/crypto/ssh. The returned
// conn has no deadlines; its CloseWrite half-closes.
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
	default:
		return nil, fmt.Errorf("ssh: dial: unsupported network %q", network)
	}
	var conn net.Conn
	err := c.open(ctx, func(cc *clientConn) (err error) {
		conn, err = cc.ssh.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, openFailure(err)
	}
	return conn, nil
}

// open runs open on the current connection, waiting while the client
// reconnects. If open fails because that connection dropped under it (not
// because the node refused) and the client reconnects, it waits for the
// next connection and tries again, until ctx ends.
func (c *Client) open(ctx context.Context, open func(*clientConn) error) error {
	for {
		cc, err := c.current(ctx)
		if err != nil {
			return err
		}
		err = open(cc)
		var refused *xssh.OpenChannelError
		if err == nil || errors.As(err, &refused) || !c.cfg.Reconnect {
			return err
		}
		select {
		case <-cc.dropped:
		case <-ctx.Done():
			return err
		}
	}
}

// Session opens a session channel for one command, shell or subsystem,
// waiting while the client reconnects, until ctx ends. The caller closes
// it; a session does not survive a reconnect.
func (c *Client) Session(ctx context.Context) (*xssh.Session, error) {
	var sess *xssh.Session
	err := c.open(ctx, func(cc *clientConn) (err error) {
		sess, err = cc.ssh.NewSession()
		return err
	})
	return sess, err
}

// Close ends the client: it closes the connection, every remote listener
// and every channel, and waits for the client's goroutines. Closing twice
// is a no-op.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}
