package socks5

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/alkdev/alknet/core/netutil"
	"github.com/alkdev/alknet/ssh/internal/dialfail"
)

// Config configures a [Server]. Only Dial is required.
type Config struct {
	// Dial connects a CONNECT request to "host:port" over "tcp": host is an
	// IP address or a domain name exactly as the client sent it, never
	// resolved here, so no name leaks to the local resolver. (*ssh.Client)
	// DialContext fits. Its error picks the reply: one matching
	// os.ErrPermission is "not allowed by ruleset", syscall.ECONNREFUSED
	// "connection refused", syscall.EHOSTUNREACH, a *net.DNSError or a
	// timeout "host unreachable", syscall.ENETUNREACH "network
	// unreachable", anything else "general failure". Required.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// User and Password, when both are set, require RFC 1929
	// username/password authentication and refuse clients without it. Both
	// empty: the server takes clients without authentication (method
	// 0x00); serve it on loopback only. Setting one alone is invalid.
	User, Password string

	// HandshakeTimeout bounds everything before data flows: the greeting,
	// authentication, the request and the Dial. Default 30s; negative is
	// invalid.
	HandshakeTimeout time.Duration

	// Logger receives refusals and failures, never a destination. Nil
	// means slog.Default().
	Logger *slog.Logger
}

// Server is a SOCKS version 5 server (RFC 1928) taking CONNECT requests
// for IPv4 and IPv6 addresses and domain names; BIND and UDP ASSOCIATE are
// answered "command not supported". Build one with [New]; it is safe for
// concurrent use and holds no goroutines outside Serve and ServeConn.
type Server struct {
	cfg Config
}

// New checks cfg and builds a server. It opens no sockets.
func New(cfg Config) (*Server, error) {
	var errs []error
	if cfg.Dial == nil {
		errs = append(errs, errors.New("socks5: config: Dial: required"))
	}
	if (cfg.User == "") != (cfg.Password == "") {
		errs = append(errs, errors.New("socks5: config: User and Password: set both or neither"))
	}
	if len(cfg.User) > 255 || len(cfg.Password) > 255 {
		errs = append(errs, errors.New("socks5: config: User and Password: at most 255 bytes each"))
	}
	if cfg.HandshakeTimeout < 0 {
		errs = append(errs, errors.New("socks5: config: HandshakeTimeout: negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg}, nil
}

// Serve accepts clients on ln and serves each with ServeConn until ctx
// ends or ln is closed. It then closes ln, ends the clients' connections,
// waits for them and returns why it stopped: ctx's cause, or the accept
// error wrapping net.ErrClosed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return netutil.Serve(ctx, ln, s.cfg.Logger, func(ctx context.Context, c net.Conn) {
		if err := s.ServeConn(ctx, c); err != nil {
			s.cfg.Logger.Debug("socks5 client refused", "err", err)
		}
	})
}

// ServeConn serves one client on c: it negotiates, dials and then relays
// until both sides ended or ctx ends, and closes c. The error says why a
// client got no connection; it is nil once a relay ran.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(hctx, func() { _ = c.SetDeadline(time.Now()) })
	target, err := s.handshake(hctx, c)
	if !stop() && target != nil {
		// The deadline struck as the dial completed: too late.
		_ = target.Close()
		return fmt.Errorf("socks5: handshake: %w", context.Cause(hctx))
	}
	if err != nil {
		// Ends the refused client's connection gently, so that closing
		// does not reset it and destroy the reply before the client read
		// it.
		netutil.Linger(c, time.Second, 64<<10)
		return err
	}
	_ = c.SetDeadline(time.Time{})
	netutil.Relay(ctx, c, target)
	return nil
}

// handshake negotiates the method, reads the request, dials and sends the
// reply; it returns the connected target.
func (s *Server) handshake(ctx context.Context, c net.Conn) (net.Conn, error) {
	methods, err := readGreeting(c)
	if err != nil {
		return nil, err
	}
	want := byte(methodNoAuth)
	if s.cfg.User != "" {
		want = methodUserPwd
	}
	if !slices.Contains(methods, want) {
		_, _ = c.Write([]byte{version5, methodNone})
		return nil, errors.New("socks5: no acceptable method")
	}
	if _, err := c.Write([]byte{version5, want}); err != nil {
		return nil, err
	}
	if want == methodUserPwd {
		if err := s.authenticate(c); err != nil {
			return nil, err
		}
	}
	req, err := readRequest(c)
	if err != nil {
		if re, ok := errors.AsType[*replyError](err); ok {
			_, _ = c.Write(appendReply(nil, re.reply, netip.AddrPort{}))
		}
		return nil, err
	}
	if req.cmd != cmdConnect {
		_, _ = c.Write(appendReply(nil, CommandNotSupported, netip.AddrPort{}))
		return nil, fmt.Errorf("socks5: command %#x not supported", req.cmd)
	}
	target, err := s.cfg.Dial(ctx, "tcp", req.addr())
	if err != nil {
		rep := replyFor(err)
		_, _ = c.Write(appendReply(nil, rep, netip.AddrPort{}))
		return nil, fmt.Errorf("socks5: connect: %s", rep)
	}
	var bound netip.AddrPort
	if a, ok := target.LocalAddr().(*net.TCPAddr); ok {
		bound = a.AddrPort()
	}
	if _, err := c.Write(appendReply(nil, Succeeded, bound)); err != nil {
		_ = target.Close()
		return nil, err
	}
	return target, nil
}

// authenticate checks a username/password request (RFC 1929) in constant
// time and answers it.
func (s *Server) authenticate(c net.Conn) error {
	user, pass, err := readUserPass(c)
	if err != nil {
		return err
	}
	okUser := subtle.ConstantTimeCompare(user, []byte(s.cfg.User))
	okPass := subtle.ConstantTimeCompare(pass, []byte(s.cfg.Password))
	if okUser&okPass != 1 {
		_, _ = c.Write([]byte{authVersion, 1})
		s.cfg.Logger.Warn("socks5 authentication failed", "remote_ip", remoteIP(c))
		return errors.New("socks5: wrong username or password")
	}
	_, err = c.Write([]byte{authVersion, 0})
	return err
}

// replyFor picks the reply for a failed Dial.
func replyFor(err error) Reply {
	switch dialfail.Why(err) {
	case dialfail.Denied:
		return NotAllowed
	case dialfail.Refused:
		return ConnectionRefused
	case dialfail.HostUnreachable:
		return HostUnreachable
	case dialfail.NetworkUnreachable:
		return NetworkUnreachable
	}
	return GeneralFailure
}

// remoteIP returns the client's IP for logs.
func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return c.RemoteAddr().String()
}
