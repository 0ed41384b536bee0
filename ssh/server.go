package ssh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/user"
	"sync"
	"sync/atomic"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/netutil"
)

// serverVersion is the SSH identification string.
const serverVersion = "SSH-2.0-alknet"

// revalidateInterval is how often a connection that core does not track for
// revocation (a certificate identity, or a plain TCP connection) checks
// that its identity still stands.
const revalidateInterval = 500 * time.Millisecond

// Server serves SSH-2: on every stream of an alknet/ssh connection (as a
// core.Handler) and on plain net.Conns ([Server.ServeConn],
// [Server.ServeListener]). Build one with [New]. A Server holds no
// goroutines of its own and needs no closing; it is safe for concurrent use.
type Server struct {
	cfg      Config
	base     xssh.ServerConfig
	thisHost hostAddrs  // the addresses of this host, for the forwarding rules
	dialled  dialled    // the open connections of direct-tcpip channels and fwd connects
	tickets  fwdTickets // connections of fwd listeners over TCP+TLS, until claimed
	// revalidates the connections core does not track; its goroutine runs
	// only while one is open
	watcher netutil.Watcher
	execBase
}

// execBase is the default command environment, computed once.
type execBase struct {
	env []string
	dir string
}

var _ core.Handler = (*Server)(nil)

// New validates cfg and builds a server. It reports every problem at once;
// it opens no sockets and starts no goroutines.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	signer, err := xssh.NewSignerFromKey(cfg.HostKey)
	if err != nil {
		return nil, fmt.Errorf("ssh: config: HostKey: %w", err)
	}
	s := &Server{cfg: cfg, watcher: netutil.Watcher{Interval: revalidateInterval}}
	s.base = xssh.ServerConfig{
		MaxAuthTries:  cfg.MaxAuthTries,
		ServerVersion: serverVersion,
	}
	s.base.PublicKeyCallback = s.publicKey
	s.base.AddHostKey(signer)
	if cfg.Exec != nil {
		s.execBase = defaultExecBase(cfg.Exec)
	}
	return s, nil
}

// defaultExecBase derives the base environment and directory of commands.
func defaultExecBase(e *Exec) execBase {
	b := execBase{env: e.Env, dir: e.Dir}
	u, err := user.Current()
	if b.dir == "" {
		b.dir = "/"
		if err == nil && u.HomeDir != "" {
			b.dir = u.HomeDir
		}
	}
	if b.env == nil {
		if err == nil {
			b.env = append(b.env, "HOME="+u.HomeDir, "USER="+u.Username, "LOGNAME="+u.Username)
		}
		b.env = append(b.env, "SHELL="+e.Shell, "PATH="+defaultPath)
	}
	return b
}

// Forwarded reports whether a TCP connection arriving from remote (its
// peer's address, as a server on this host sees it) was opened by this
// server for a direct-tcpip channel (ssh -L, -D, -W, alknet socks and
// forward) and is still open. A service that trusts clients on loopback
// uses it to refuse that trust to connections a peer tunnelled to it, which
// come from a loopback address too. It reports by local address only, so a
// connection of another program that happens to share the local address of
// a forwarded one (to another destination) is also reported: use the
// answer only to withhold trust, never to grant it. Safe for concurrent use.
func (s *Server) Forwarded(remote netip.AddrPort) bool { return s.dialled.has(remote) }

// HostKey returns the server's host key, as OpenSSH shows it in known_hosts.
func (s *Server) HostKey() xssh.PublicKey {
	k, _ := xssh.NewPublicKey(s.cfg.HostKey.Public())
	return k
}

// ALPNs implements core.Handler: it returns [ALPN] and [FwdALPN].
func (s *Server) ALPNs() []string { return []string{ALPN, FwdALPN} }

// Serve implements core.Handler. Each stream the peer opens carries one SSH
// connection (several may run at once); Serve returns once the connection
// ended and every session on it is closed. When ctx ends (the endpoint
// shuts down), Serve stops taking streams and closes the open sessions. An
// identity that authenticates is bound to conn when conn is a
// core.IdentityBinder, so a reload revoking it closes conn; revoking one
// identity therefore ends every session of the connection. Serve returns
// nil: a failed session is logged, not an error of the connection.
//
// A connection of [FwdALPN] carries forwards without an SSH layer, one per
// stream (docs/protocols/fwd.md), decided by the same scopes and rules.
func (s *Server) Serve(ctx context.Context, conn core.Conn) error {
	if conn.ALPN() == FwdALPN {
		return s.serveFwd(ctx, conn)
	}
	sessCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(conn.Context(), cancel)
	defer stop()
	binder, _ := conn.(core.IdentityBinder)
	peer := conn.Peer()
	log := conn.Logger()
	var wg sync.WaitGroup
	for {
		st, err := conn.AcceptStream(sessCtx)
		if err != nil {
			break
		}
		wg.Go(func() {
			// An SSH session, idle at a prompt or not, is work in flight:
			// the node's application idle timeout leaves it alone, as
			// sshd does by default. The handshake timeout bounds the rest.
			defer core.Hold(conn)()
			nc := newStreamConn(st, peer.RemoteAddr)
			if err := s.serve(sessCtx, ctx, nc, peer, binder, log); err != nil {
				log.Debug("ssh session ended", "err", err)
			}
		})
	}
	// A single-stream connection reports closed after its one stream while
	// the session still runs: wait for it to end by itself, or for ctx.
	wg.Wait()
	return nil
}

// ServeConn serves one SSH connection on c, for a plain TCP listener the
// CLI runs. It returns when the connection ends or ctx ends, and closes c.
// The peer is known only by c.RemoteAddr(); since core does not track c,
// the server itself checks twice a second that the identity still stands
// and closes c when a reload revoked it. The error says why the handshake
// failed, or is nil once an authenticated connection ended.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	peer := core.Peer{RemoteAddr: c.RemoteAddr()}
	log := s.cfg.Logger.With("alpn", ALPN, "remote_ip", peer.RemoteIP(), "node", "-")
	return s.serve(ctx, ctx, c, peer, nil, log)
}

// ServeListener accepts connections on ln and serves each with ServeConn
// until ctx ends or ln is closed. It then closes ln, closes the connections
// it serves and waits for them, and returns why it stopped: ctx's cause, or
// the accept error wrapping net.ErrClosed. Other accept errors (out of file
// descriptors, say) are retried after a pause growing from 5 ms to 1 s.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	// Each address counts on its own (no IPv6 prefix grouping).
	perIP := &netutil.IPCount{Max: s.cfg.MaxConnsPerIP}
	err := netutil.Serve(ctx, ln, s.cfg.Logger.With("alpn", ALPN), func(ctx context.Context, c net.Conn) {
		ip := core.Peer{RemoteAddr: c.RemoteAddr()}.RemoteIP()
		source := netutil.Source(c.RemoteAddr(), 0)
		if !perIP.Acquire(source) {
			s.cfg.Logger.Warn("connection refused: limit reached", "alpn", ALPN, "remote_ip", ip)
			_ = c.Close()
			return
		}
		defer perIP.Release(source)
		if err := s.ServeConn(ctx, c); err != nil {
			s.cfg.Logger.Debug("ssh connection ended", "remote_ip", ip, "err", err)
		}
	})
	if errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("ssh: %w", err)
	}
	return err
}

// policy returns the policy in force, never nil.
func (s *Server) policy() *Policy {
	if s.cfg.Policy != nil {
		if p := s.cfg.Policy(); p != nil {
			return p
		}
	}
	return &Policy{}
}

// serve runs one SSH connection on nc until ctx ends, and closes nc.
// stopping ends when the server shuts down: a handshake cut short by it is
// no failed login.
func (s *Server) serve(ctx, stopping context.Context, nc net.Conn, peer core.Peer, binder core.IdentityBinder, log *slog.Logger) error {
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()

	cfg := s.base
	var attempts atomic.Int32
	cfg.AuthLogCallback = func(meta xssh.ConnMetadata, method string, err error) {
		attempts.Add(1)
		if err != nil && method != "none" {
			log.Debug("ssh auth attempt failed", "method", method, "err", err)
		}
	}
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	sconn, chans, reqs, err := xssh.NewServerConn(nc, &cfg)
	if err != nil {
		if attempts.Load() > 0 && stopping.Err() == nil {
			core.LogAuth(s.cfg.Logger, core.AuthReject, ALPN, peer, nil)
		}
		return fmt.Errorf("ssh: handshake: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	info, _ := sconn.Permissions.ExtraData[authKey{}].(*authInfo)
	if info == nil {
		// Unreachable: every accepting callback sets it.
		_ = sconn.Close()
		return errors.New("ssh: authenticated without an identity")
	}
	core.LogAuth(s.cfg.Logger, core.AuthAccept, ALPN, peer, &info.id)

	c := &connection{
		srv:      s,
		sconn:    sconn,
		info:     info,
		peer:     peer,
		log:      log.With("id", info.id.ID),
		forwards: make(map[forwardKey]net.Listener),
	}
	c.run(ctx, chans, reqs, binder)
	return nil
}

// connection is one authenticated SSH connection.
type connection struct {
	srv   *Server
	sconn *xssh.ServerConn
	info  *authInfo
	peer  core.Peer
	log   *slog.Logger

	// ctx ends when the connection ends; every goroutine below watches it.
	ctx context.Context
	wg  sync.WaitGroup

	channels       atomic.Int32 // open channels, both directions
	noMoreSessions atomic.Bool

	mu       sync.Mutex
	forwards map[forwardKey]net.Listener
	closed   bool
}

// forwardKey names a remote forward: a TCP bind as the client asked for it
// (address text, bound port), or a Unix socket path (port 0, unix set).
type forwardKey struct {
	addr string
	port uint32
	unix bool
}

// run services the connection until it ends, then closes everything it
// opened and waits for its goroutines.
func (c *connection) run(ctx context.Context, chans <-chan xssh.NewChannel, reqs <-chan *xssh.Request, binder core.IdentityBinder) {
	ctx, cancel := context.WithCancel(ctx)
	c.ctx = ctx
	stop := context.AfterFunc(ctx, func() { _ = c.sconn.Close() })
	unwatch := func() {}
	defer func() {
		unwatch()
		stop()
		cancel()
		_ = c.sconn.Close()
		c.closeForwards()
		c.wg.Wait()
	}()
	if binder != nil && c.info.directory {
		binder.BindIdentity(c.info.id)
	} else {
		unwatch = c.srv.watcher.Watch(func() bool { return c.srv.stillValid(c.info) }, c.revoke)
	}
	c.wg.Go(func() { c.globalRequests(reqs) })
	for nc := range chans {
		c.wg.Go(func() { c.handleChannel(nc) })
	}
}

// revoke closes the connection: its identity no longer stands. The
// server's watcher calls it, possibly just after the connection ended.
func (c *connection) revoke() {
	if c.ctx.Err() == nil {
		c.log.Info("connection revoked")
	}
	_ = c.sconn.Close()
}

// acquire counts a channel against MaxChannels; release undoes it.
func (c *connection) acquire() bool {
	if int(c.channels.Add(1)) > c.srv.cfg.MaxChannels {
		c.channels.Add(-1)
		return false
	}
	return true
}

func (c *connection) release() { c.channels.Add(-1) }

// handleChannel dispatches a channel the client opened.
func (c *connection) handleChannel(nc xssh.NewChannel) {
	if !c.acquire() {
		_ = nc.Reject(xssh.ResourceShortage, "too many channels")
		c.log.Warn("ssh channel refused", "type", nc.ChannelType(), "reason", "too many channels")
		return
	}
	defer c.release()
	switch nc.ChannelType() {
	case "session":
		c.session(nc)
	case "direct-tcpip":
		c.directTCPIP(nc)
	case "direct-streamlocal@openssh.com":
		c.directStreamLocal(nc)
	default:
		_ = nc.Reject(xssh.UnknownChannelType, "unknown channel type")
		c.log.Debug("ssh channel refused", "type", core.Clip(nc.ChannelType()), "reason", "unknown type")
	}
}

// refuse rejects a channel and logs why, never where it was going.
func (c *connection) refuse(nc xssh.NewChannel, why xssh.RejectionReason, msg string) {
	_ = nc.Reject(why, msg)
	c.log.Warn("ssh channel refused", "type", nc.ChannelType(), "reason", msg)
}

// globalRequests answers the connection's global requests.
func (c *connection) globalRequests(reqs <-chan *xssh.Request) {
	for req := range reqs {
		switch req.Type {
		case "tcpip-forward":
			ok, payload := c.tcpipForward(req.Payload)
			_ = req.Reply(ok, payload)
		case "cancel-tcpip-forward":
			_ = req.Reply(c.cancelTCPIPForward(req.Payload), nil)
		case "streamlocal-forward@openssh.com":
			_ = req.Reply(c.streamLocalForward(req.Payload), nil)
		case "cancel-streamlocal-forward@openssh.com":
			_ = req.Reply(c.cancelStreamLocalForward(req.Payload), nil)
		case "no-more-sessions@openssh.com":
			c.noMoreSessions.Store(true)
			_ = req.Reply(true, nil)
		default:
			// keepalive@openssh.com and everything unknown: a failure
			// reply is the answer a keep-alive wants.
			_ = req.Reply(false, nil)
		}
	}
}

// may reports whether the identity holds scope.
func (c *connection) may(scope string) bool { return c.info.id.HasScope(scope) }

// mayExec reports whether the identity may run commands.
func (c *connection) mayExec() bool { return c.srv.cfg.Exec != nil && c.may(ScopeShell) }
