package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/netutil"
)

// Wire payloads (RFC 4254 §7 and OpenSSH PROTOCOL §2.4–2.5).
type (
	directTCPIPMsg struct {
		Host     string
		Port     uint32
		OrigAddr string
		OrigPort uint32
	}
	forwardMsg struct {
		Addr string
		Port uint32
	}
	forwardReplyMsg struct {
		Port uint32
	}
	forwardedTCPIPMsg struct {
		Addr     string
		Port     uint32
		OrigAddr string
		OrigPort uint32
	}
	directStreamLocalMsg struct {
		Path      string
		Reserved0 string
		Reserved1 uint32
	}
	streamLocalForwardMsg struct {
		Path string
	}
	forwardedStreamLocalMsg struct {
		Path     string
		Reserved string
	}
)

// errDenied marks a forward the policy refused.
var errDenied = errors.New("denied by policy")

// errNoAddresses is a host name that resolved to nothing.
var errNoAddresses = &net.DNSError{Err: "no addresses", IsNotFound: true}

// mayForward reports whether the identity may open direct channels.
func (c *connection) mayForward() bool { return c.info.permitForward && c.may(ScopeForward) }

// mayRemoteForward reports whether the identity may ask for listeners.
func (c *connection) mayRemoteForward() bool {
	return c.info.permitForward && c.may(ScopeRemoteForward)
}

// directTCPIP serves ssh -L, -D and -W: check the policy, dial, and only
// then confirm the channel, so a failed dial is an open failure the client
// sees.
func (c *connection) directTCPIP(nc xssh.NewChannel) {
	var m directTCPIPMsg
	if err := xssh.Unmarshal(nc.ExtraData(), &m); err != nil || m.Port > 65535 {
		c.refuse(nc, xssh.ConnectionFailed, "malformed request")
		return
	}
	host := normHost(m.Host)
	if host == CallTarget {
		c.callChannel(nc)
		return
	}
	if strings.HasPrefix(host, "alknet-") {
		c.refuse(nc, xssh.Prohibited, "reserved target")
		return
	}
	if !c.mayForward() {
		c.refuse(nc, xssh.Prohibited, "forwarding not permitted")
		return
	}
	if m.Port == 0 {
		c.refuse(nc, xssh.ConnectionFailed, "port 0")
		return
	}
	target, err := c.dialTCP(host, uint16(m.Port))
	if err != nil {
		switch {
		case errors.Is(err, errDenied):
			c.refuse(nc, xssh.Prohibited, "forwarding denied")
		case errors.Is(err, errFilesLow):
			c.refuse(nc, xssh.ResourceShortage, "node out of file descriptors, try later")
		default:
			c.refuse(nc, xssh.ConnectionFailed, dialFailure(err))
		}
		return
	}
	// Recorded before the channel is confirmed, so before the client can
	// send a byte through it: see Server.Forwarded.
	defer c.srv.dialled.add(target)()
	c.accept(nc, target)
}

// dialTCP resolves host, checks every address against the forwarding rules
// and dials the allowed addresses in turn: the addresses judged are the ones
// dialled, so nothing is resolved twice (no DNS rebinding in between).
func (c *connection) dialTCP(host string, port uint16) (net.Conn, error) {
	return c.srv.dialForward(c.ctx, &c.info.id, host, port)
}

// dialForward is dialTCP for the identity id, within ctx and DialTimeout;
// both the SSH channels and alknet/fwd use it.
func (s *Server) dialForward(ctx context.Context, id *core.Identity, host string, port uint16) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	addrs, err := resolveHost(ctx, host, s.cfg.LookupIP)
	if err != nil {
		return nil, err
	}
	pol := s.policy()
	if decide(pol.Forward, host, addrs, port, id, denyAll, s.thisHost.contains) != Allow {
		return nil, errDenied
	}
	if core.FilesLow() {
		// The node is down to its reserve of descriptors, kept for
		// accepting connections and its own stores.
		return nil, errFilesLow
	}
	var errs []error
	for _, a := range addrs {
		conn, err := s.cfg.Dial(ctx, "tcp", netip.AddrPortFrom(a, port).String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// errFilesLow refuses a forward while the node is down to its reserve of
// file descriptors (core.FilesLow).
var errFilesLow = errors.New("ssh: node out of file descriptors")

// resolveHost returns an IP literal as is and looks a host name up with
// lookup. The numeric IPv4 forms getaddrinfo accepts ("2130706433",
// "0x7f000001", "127.1") are read here, not left to the resolver, so they
// are judged as the address they are whatever resolver runs. A name that is
// not a plausible host name is denied (errDenied) without a lookup.
func resolveHost(ctx context.Context, host string, lookup func(context.Context, string) ([]netip.Addr, error)) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	if checkHostPattern(host) != nil || strings.Contains(host, "*") {
		return nil, errDenied
	}
	if a, numeric, err := parseNumericIPv4(host); numeric {
		if err != nil {
			return nil, errDenied
		}
		return []netip.Addr{a}, nil
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("resolve: %w", err)
	}
	if len(addrs) == 0 {
		return nil, errNoAddresses
	}
	return addrs, nil
}

// accept confirms nc and pipes it to target until either side ends.
func (c *connection) accept(nc xssh.NewChannel, target net.Conn) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		_ = target.Close()
		return
	}
	c.wg.Go(func() { xssh.DiscardRequests(reqs) })
	netutil.Relay(c.ctx, ch, target)
}

// callChannel connects a channel to the call protocol.
func (c *connection) callChannel(nc xssh.NewChannel) {
	serve := c.srv.cfg.CallChannel
	if serve == nil {
		c.refuse(nc, xssh.Prohibited, "call protocol not offered")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	c.wg.Go(func() { xssh.DiscardRequests(reqs) })
	id := c.info.id
	conn := core.NewStreamConn(channelStream{ch}, CallTarget, core.Peer{
		RemoteAddr: c.peer.RemoteAddr,
		NodeID:     id.NodeID,
		Identity:   &id,
	}, c.log)
	stop := context.AfterFunc(c.ctx, func() { _ = conn.CloseWithError(core.CodeShutdown, "") })
	defer stop()
	if err := serve(c.ctx, conn); err != nil {
		c.log.Debug("call channel ended", "err", err)
	}
	// A clean end for the client (EOF after everything written), then the
	// channel closes at once: channels have no deadline to linger with.
	_ = ch.CloseWrite()
	_ = conn.CloseWithError(core.CodeShutdown, "")
}

// directStreamLocal serves ssh -L to a Unix socket on the server.
func (c *connection) directStreamLocal(nc xssh.NewChannel) {
	var m directStreamLocalMsg
	if err := xssh.Unmarshal(nc.ExtraData(), &m); err != nil {
		c.refuse(nc, xssh.ConnectionFailed, "malformed request")
		return
	}
	if !c.mayForward() || !pathAllowed(c.srv.policy().StreamLocalConnect, m.Path) {
		c.refuse(nc, xssh.Prohibited, "forwarding denied")
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.DialTimeout)
	target, err := c.srv.cfg.Dial(ctx, "unix", m.Path)
	cancel()
	if err != nil {
		c.refuse(nc, xssh.ConnectionFailed, "connect failed")
		return
	}
	c.accept(nc, target)
}

// tcpipForward serves ssh -R: check the bind address, listen, and forward
// every accepted connection as a forwarded-tcpip channel.
func (c *connection) tcpipForward(payload []byte) (bool, []byte) {
	var m forwardMsg
	if err := xssh.Unmarshal(payload, &m); err != nil || m.Port > 65535 {
		return false, nil
	}
	if !c.mayRemoteForward() {
		c.log.Warn("ssh remote forward refused", "reason", "not permitted")
		return false, nil
	}
	ln, err := c.srv.listenRemote(c.ctx, &c.info.id, m.Addr, uint16(m.Port))
	switch {
	case errors.Is(err, errBadBind):
		c.log.Warn("ssh remote forward refused", "reason", "bad bind address")
		return false, nil
	case errors.Is(err, errDenied):
		c.log.Warn("ssh remote forward refused", "reason", "bind denied")
		return false, nil
	case err != nil:
		c.log.Info("ssh remote forward failed", "err", err)
		return false, nil
	}
	port := uint32(ln.Addr().(*net.TCPAddr).Port)
	key := forwardKey{addr: m.Addr, port: port}
	if !c.addForward(key, ln) {
		return false, nil
	}
	c.wg.Go(func() {
		c.acceptLoop(ln, func(conn net.Conn) {
			orig := conn.RemoteAddr().(*net.TCPAddr)
			c.forwarded(conn, "forwarded-tcpip", xssh.Marshal(forwardedTCPIPMsg{
				Addr: m.Addr, Port: port, OrigAddr: orig.IP.String(), OrigPort: uint32(orig.Port),
			}))
		})
	})
	if m.Port == 0 {
		return true, xssh.Marshal(forwardReplyMsg{Port: port})
	}
	return true, nil
}

// errBadBind is a remote forward's bind address that does not resolve.
var errBadBind = errors.New("bad bind address")

// listenRemote checks the bind address of a remote forward for the
// identity id against the bind rules and listens there: addr as the client
// wrote it ("" or "*" every interface, a name resolved within
// DialTimeout), port 0 for any. Refusals are errBadBind and errDenied.
// Both tcpip-forward and alknet/fwd use it.
func (s *Server) listenRemote(ctx context.Context, id *core.Identity, addr string, port uint16) (net.Listener, error) {
	host := normHost(addr)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	var addrs []netip.Addr
	listenHost := ""
	switch host {
	case "", "*":
		addrs = []netip.Addr{netip.IPv4Unspecified(), netip.IPv6Unspecified()}
	default:
		var err error
		if addrs, err = resolveHost(ctx, host, s.cfg.LookupIP); err != nil {
			return nil, errBadBind
		}
		listenHost = addrs[0].String()
	}
	if decide(s.policy().RemoteForward, host, addrs, port, id, loopbackOnly, nil) != Allow {
		return nil, errDenied
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, "tcp", net.JoinHostPort(listenHost, strconv.Itoa(int(port))))
}

// cancelTCPIPForward closes a listener tcpipForward opened.
func (c *connection) cancelTCPIPForward(payload []byte) bool {
	var m forwardMsg
	if err := xssh.Unmarshal(payload, &m); err != nil {
		return false
	}
	return c.removeForward(forwardKey{addr: m.Addr, port: m.Port})
}

// streamLocalForward serves ssh -R from a Unix socket on the server.
func (c *connection) streamLocalForward(payload []byte) bool {
	var m streamLocalForwardMsg
	if err := xssh.Unmarshal(payload, &m); err != nil {
		return false
	}
	if !c.mayRemoteForward() || !pathAllowed(c.srv.policy().StreamLocalListen, m.Path) {
		c.log.Warn("ssh remote forward refused", "reason", "socket path denied")
		return false
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(c.ctx, "unix", m.Path)
	if err != nil {
		c.log.Info("ssh remote forward failed", "err", err)
		return false
	}
	// Only the server's user may connect, like OpenSSH's StreamLocalBindMask.
	if err := os.Chmod(m.Path, 0o600); err != nil {
		_ = ln.Close()
		return false
	}
	key := forwardKey{addr: m.Path, unix: true}
	if !c.addForward(key, ln) {
		return false
	}
	c.wg.Go(func() {
		c.acceptLoop(ln, func(conn net.Conn) {
			c.forwarded(conn, "forwarded-streamlocal@openssh.com", xssh.Marshal(forwardedStreamLocalMsg{Path: m.Path}))
		})
	})
	return true
}

// cancelStreamLocalForward closes a Unix listener.
func (c *connection) cancelStreamLocalForward(payload []byte) bool {
	var m streamLocalForwardMsg
	if err := xssh.Unmarshal(payload, &m); err != nil {
		return false
	}
	return c.removeForward(forwardKey{addr: m.Path, unix: true})
}

// addForward records a listener; it refuses (and closes ln) a duplicate, one
// over MaxRemoteForwards, or any once the connection is closing.
func (c *connection) addForward(key forwardKey, ln net.Listener) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, dup := c.forwards[key]
	if c.closed || dup || len(c.forwards) >= c.srv.cfg.MaxRemoteForwards {
		_ = ln.Close()
		return false
	}
	c.forwards[key] = ln
	return true
}

// removeForward closes and forgets a listener.
func (c *connection) removeForward(key forwardKey) bool {
	c.mu.Lock()
	ln, ok := c.forwards[key]
	delete(c.forwards, key)
	c.mu.Unlock()
	if ok {
		_ = ln.Close()
	}
	return ok
}

// closeForwards closes every listener; no new one is added afterwards.
func (c *connection) closeForwards() {
	c.mu.Lock()
	c.closed = true
	lns := c.forwards
	c.forwards = nil
	c.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
}

// acceptLoop hands each connection ln accepts to serve, in its own
// goroutine, until ln is closed or the connection ends.
func (c *connection) acceptLoop(ln net.Listener, serve func(net.Conn)) {
	_ = netutil.Serve(c.ctx, ln, c.log, func(_ context.Context, conn net.Conn) { serve(conn) })
}

// forwarded opens a server-side channel for conn and pipes the two.
func (c *connection) forwarded(conn net.Conn, chanType string, payload []byte) {
	if !c.acquire() {
		_ = conn.Close()
		return
	}
	defer c.release()
	ch, reqs, err := c.sconn.OpenChannel(chanType, payload)
	if err != nil {
		_ = conn.Close()
		return
	}
	c.wg.Go(func() { xssh.DiscardRequests(reqs) })
	netutil.Relay(c.ctx, ch, conn)
}
