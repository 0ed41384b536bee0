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

	"github.com/alkdev/alknet/core/netutil"
)

// forwardDialTimeout bounds each connection [Forward] makes.
const forwardDialTimeout = 30 * time.Second

// Listen asks the node to listen on addr ("host:port", tcpip-forward, ssh
// -R) and returns a listener whose Accept yields the connections the node
// forwards. host goes to the node as written: "localhost" means its
// loopback addresses, "" every interface; the node's bind rules decide.
// Port 0 lets the node pick; Addr reports the port. Only network "tcp" is
// supported. With Reconnect the forward is asked for again, on the same
// port, on every new connection, and the listener keeps working; Close
// cancels it. Listen waits while the client reconnects.
func (c *Client) Listen(network, addr string) (*RemoteListener, error) {
	if network != "tcp" {
		return nil, fmt.Errorf("ssh: listen: unsupported network %q", network)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("ssh: listen: %w", err)
	}
	cc, err := c.current(c.ctx)
	if err != nil {
		return nil, err
	}
	inner, err := cc.ssh.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("ssh: listen: %w", err)
	}
	bound := inner.Addr().(*net.TCPAddr)
	l := &RemoteListener{
		c:        c,
		addr:     bound,
		hostport: net.JoinHostPort(host, strconv.Itoa(bound.Port)),
		conns:    make(chan net.Conn),
		done:     make(chan struct{}),
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		_ = inner.Close()
		return nil, c.err
	}
	c.listeners[l] = struct{}{}
	c.mu.Unlock()
	c.attach(l, cc, inner)
	// The connection may have changed meanwhile: let the supervisor check.
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return l, nil
}

// attach makes inner, the forward on cc, feed l.
func (c *Client) attach(l *RemoteListener, cc *clientConn, inner net.Listener) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || c.err != nil {
		_ = inner.Close()
		return
	}
	l.cc, l.inner = cc, inner
	c.wg.Go(func() { l.pump(inner) })
}

// RemoteListener is a remote forward: a listener on the node whose
// connections arrive through the SSH connection. It is safe for concurrent
// use.
type RemoteListener struct {
	c        *Client
	addr     *net.TCPAddr
	hostport string // as asked again on reconnect: host as given, bound port
	conns    chan net.Conn
	done     chan struct{}

	mu     sync.Mutex
	cc     *clientConn  // the connection the forward is registered on
	inner  net.Listener // the forward on cc
	closed bool
}

var _ net.Listener = (*RemoteListener)(nil)

// on returns the connection the forward is registered on.
func (l *RemoteListener) on() *clientConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cc
}

// pump hands inner's connections to Accept until inner ends (its
// connection ended, or the listener was closed).
func (l *RemoteListener) pump(inner net.Listener) {
	for {
		conn, err := inner.Accept()
		if err != nil {
			return
		}
		select {
		case l.conns <- conn:
		case <-l.done:
			_ = conn.Close()
			return
		}
	}
}

// Accept waits for the next connection forwarded by the node, across
// reconnects. After Close, or once the client ended, it returns an error
// matching net.ErrClosed. The conn has no deadlines; its CloseWrite
// half-closes.
func (l *RemoteListener) Accept() (net.Conn, error) {
	select {
	case conn := <-l.conns:
		return conn, nil
	case <-l.done:
		return nil, fmt.Errorf("ssh: remote listener %s: %w", l.hostport, net.ErrClosed)
	}
}

// Addr returns the address the node listens on: the IP asked for (0.0.0.0
// for a name or every interface) and the bound port.
func (l *RemoteListener) Addr() net.Addr { return l.addr }

// Close cancels the forward on the node and ends Accept. Closing twice is
// a no-op.
func (l *RemoteListener) Close() error {
	l.c.mu.Lock()
	delete(l.c.listeners, l)
	l.c.mu.Unlock()
	l.shut()
	return nil
}

// shut ends Accept and cancels the forward on its connection.
func (l *RemoteListener) shut() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	inner := l.inner
	l.mu.Unlock()
	close(l.done)
	if inner != nil {
		_ = inner.Close() // cancel-tcpip-forward; fails harmlessly on a dead connection
	}
}

// Forward accepts connections on ln and connects each to addr on network
// with dial, relaying bytes both ways (half-closes included), until ctx
// ends or ln is closed; it then closes ln, ends the relays and returns why
// it stopped. A local forward (ssh -L) is a local listener and
// (*Client).DialContext; a remote forward (ssh -R) is a [RemoteListener]
// and a net.Dialer's DialContext. A connection that cannot be made is
// closed; the failure is logged with logger (nil: slog.Default()) at debug
// level, without its destination.
func Forward(ctx context.Context, ln net.Listener, dial func(ctx context.Context, network, addr string) (net.Conn, error), network, addr string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	return netutil.Serve(ctx, ln, logger, func(ctx context.Context, conn net.Conn) {
		dctx, cancel := context.WithTimeout(ctx, forwardDialTimeout)
		target, err := dial(dctx, network, addr)
		cancel()
		if err != nil {
			_ = conn.Close()
			logger.Debug("forward connect failed", "listen", ln.Addr().String(), "err", withoutAddr(err))
			return
		}
		netutil.Relay(ctx, conn, target)
	})
}

// withoutAddr strips the addresses a *net.OpError names, for logs.
func withoutAddr(err error) error {
	if oe, ok := errors.AsType[*net.OpError](err); ok {
		return oe.Err
	}
	return err
}
