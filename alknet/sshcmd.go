package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"
	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh"
	"github.com/alkdev/alknet/ssh/socks5"
)

var socksCommand = &cli.Command{
	Name:      "socks",
	Usage:     "run a local SOCKS5 proxy whose connections leave through a node",
	ArgsUsage: "[NODEID@]HOST:PORT",
	Description: "Listens on --listen (default 127.0.0.1:1080) for SOCKS5 clients. Each CONNECT becomes an\n" +
		"alknet/fwd stream (or, on a node without it, an SSH direct-tcpip channel) to the node,\n" +
		"which resolves names (no local DNS lookup), applies its forwarding rules and\n" +
		"connects. The node must grant ssh:connect and\n" +
		"ssh:forward to this data dir's key. The connection is redialled when it drops; a\n" +
		"refused key (revoked, say) ends the command with status 1.\n\n" +
		"  alknet socks NODEID@node.example.org:4433 &\n" +
		"  curl --socks5-hostname 127.0.0.1:1080 http://intranet.example/",
	Flags: withCommon(
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:1080", Usage: "local address of the proxy"},
		&cli.StringFlag{Name: "user", Usage: "require this SOCKS5 username (RFC 1929) with --password-file"},
		&cli.StringFlag{Name: "password-file", Usage: "file holding the SOCKS5 password --user requires"},
		forwardProtocolFlag,
		networkFlag,
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("alknet socks: want one address, [NODEID@]HOST:PORT", 2)
		}
		cfg := socks5.Config{User: c.String("user")}
		if f := c.String("password-file"); f != "" {
			b, err := os.ReadFile(f)
			if err != nil {
				return fmt.Errorf("password file: %w", err)
			}
			cfg.Password = strings.TrimRight(string(b), "\r\n")
		}
		if (cfg.User == "") != (cfg.Password == "") {
			return cli.Exit("alknet socks: --user and --password-file go together", 2)
		}
		return untilStopped(c, func(ctx context.Context, client tunnel, logger *slog.Logger) error {
			cfg.Dial, cfg.Logger = client.DialContext, logger
			srv, err := socks5.New(cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return err
			}
			logger.Info("socks listening", "addr", ln.Addr().String())
			return srv.Serve(ctx, ln)
		})
	},
}

var forwardCommand = &cli.Command{
	Name:      "forward",
	Usage:     "forward local ports through a node (-L) and node ports back here (-R)",
	ArgsUsage: "[NODEID@]HOST:PORT",
	Description: "OpenSSH's -L and -R: -L [bind:]port:host:hostport listens here (default on loopback) and\n" +
		"connects each connection from the node to host:hostport (needs ssh:forward and a\n" +
		"forwarding rule); -R [bind:]port:host:hostport has the node listen (default on its\n" +
		"loopback; needs ssh:remote-forward) and connects each connection from here to\n" +
		"host:hostport. IPv6 addresses go in brackets; bind \"*\" or empty means every\n" +
		"interface; port 0 picks a free one. The connection is redialled when it drops and\n" +
		"the -R listeners come back; a refused key (revoked, say) ends the command with\n" +
		"status 1. Forwards travel on alknet/fwd, one QUIC stream each, when the node offers\n" +
		"it, else as SSH channels (--forward-protocol forces either).\n\n" +
		"  alknet forward NODEID@node:4433 -L 5432:db.internal:5432 -R 8080:localhost:3000",
	Flags: withCommon(
		&cli.StringSliceFlag{Name: "L", Usage: "local forward [bind:]port:host:hostport (repeatable)"},
		&cli.StringSliceFlag{Name: "R", Usage: "remote forward [bind:]port:host:hostport (repeatable)"},
		forwardProtocolFlag,
		networkFlag,
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("alknet forward: want one address, [NODEID@]HOST:PORT", 2)
		}
		local, err := parseForwardSpecs("-L", c.StringSlice("L"))
		if err != nil {
			return cli.Exit("alknet forward: "+err.Error(), 2)
		}
		remote, err := parseForwardSpecs("-R", c.StringSlice("R"))
		if err != nil {
			return cli.Exit("alknet forward: "+err.Error(), 2)
		}
		if len(local)+len(remote) == 0 {
			return cli.Exit("alknet forward: want at least one -L or -R", 2)
		}
		return untilStopped(c, func(ctx context.Context, client tunnel, logger *slog.Logger) error {
			return runForwards(ctx, client, logger, local, remote)
		})
	},
}

// runForwards opens every listener, then serves them all until ctx ends or
// one fails.
func runForwards(ctx context.Context, client tunnel, logger *slog.Logger, local, remote []forwardSpec) error {
	type forward struct {
		ln   net.Listener
		dial func(ctx context.Context, network, addr string) (net.Conn, error)
		spec forwardSpec
	}
	var fws []forward
	closeAll := func() {
		for _, f := range fws {
			_ = f.ln.Close()
		}
	}
	for _, s := range local {
		ln, err := net.Listen("tcp", s.localAddr())
		if err != nil {
			closeAll()
			return fmt.Errorf("-L %s: %w", s, err)
		}
		logger.Info("local forward listening", "listen", ln.Addr().String())
		dial := client.DialContext
		if e, ok := client.(earlyDialer); ok {
			dial = e.DialEarly // the application speaks first: no round trip for the reply
		}
		fws = append(fws, forward{ln, dial, s})
	}
	var d net.Dialer
	for _, s := range remote {
		ln, err := client.Listen("tcp", s.remoteAddr())
		if err != nil {
			closeAll()
			return fmt.Errorf("-R %s: %w", s, err)
		}
		// As OpenSSH's "Allocated port N for remote forward": the port the
		// node bound (its choice for port 0), with the bind address as
		// asked, since the node reports only the port (the listener's IP
		// would say 0.0.0.0 for localhost).
		port := 0
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			port = a.Port
		}
		logger.Info("remote forward listening on the node", "listen", s.remoteBound(port), "port", port)
		fws = append(fws, forward{ln, d.DialContext, s})
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for _, f := range fws {
		wg.Go(func() {
			err := ssh.Forward(ctx, f.ln, f.dial, "tcp", f.spec.target(), logger)
			cancel(fmt.Errorf("forward %s: %w", f.spec, err))
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

var sshCommand = &cli.Command{
	Name:      "ssh",
	Usage:     "run a command or a shell on a node over alknet/ssh",
	ArgsUsage: "[NODEID@]HOST:PORT [-- COMMAND [ARG...]]",
	Description: "Logs in with this data dir's node key (the node needs ssh:connect and ssh:shell, and\n" +
		"[ssh] exec = true). With a command (everything after the address, options and all),\n" +
		"runs it and exits with its status. Without one, starts a shell, with a PTY when\n" +
		"standard input is a terminal.\n\n" +
		"  alknet ssh NODEID@node:4433 uname -a",
	Flags: withCommon(
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "give a command a PTY too (when standard input is a terminal)"},
		networkFlag,
	),
	Action: func(c *cli.Context) error {
		args := c.Args().Slice()
		if len(args) > 1 && args[1] == "--" {
			args = append(args[:1], args[2:]...)
		}
		if len(args) == 0 {
			return cli.Exit("alknet ssh: want an address, [NODEID@]HOST:PORT, and optionally a command", 2)
		}
		ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		client, _, err := dialSSH(ctx, c, false)
		if err != nil {
			return err
		}
		defer client.Close()
		sess, err := client.Session(ctx)
		if err != nil {
			return err
		}
		defer sess.Close()
		command := strings.Join(args[1:], " ")
		fd := int(os.Stdin.Fd())
		if term.IsTerminal(fd) && (command == "" || c.Bool("tty")) {
			restore, err := startPTY(ctx, sess, fd)
			if err != nil {
				return err
			}
			defer restore()
		}
		sess.Stdin, sess.Stdout, sess.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
		if command == "" {
			err = sess.Shell()
		} else {
			err = sess.Start(command)
		}
		if err != nil {
			return err
		}
		stopSess := context.AfterFunc(ctx, func() { _ = sess.Close() })
		defer stopSess()
		return exitStatus(ctx, sess.Wait())
	},
}

// startPTY asks for a PTY the size of the terminal, puts the terminal in
// raw mode and passes size changes on; restore undoes it.
func startPTY(ctx context.Context, sess *xssh.Session, fd int) (restore func(), err error) {
	size := func() (w, h int) {
		w, h, err := term.GetSize(fd)
		if err != nil {
			return 80, 24
		}
		return w, h
	}
	w, h := size()
	termName := os.Getenv("TERM")
	if termName == "" {
		termName = "xterm"
	}
	modes := xssh.TerminalModes{xssh.ECHO: 1, xssh.TTY_OP_ISPEED: 38400, xssh.TTY_OP_OSPEED: 38400}
	if err := sess.RequestPty(termName, h, w, modes); err != nil {
		return nil, fmt.Errorf("pty: %w", err)
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return nil, fmt.Errorf("terminal: %w", err)
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-winch:
				w, h := size()
				_ = sess.WindowChange(h, w)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return func() {
		signal.Stop(winch)
		close(done)
		wg.Wait()
		_ = term.Restore(fd, old)
	}, nil
}

// exitStatus turns the end of a session into the command's exit status.
func exitStatus(ctx context.Context, err error) error {
	var exit *xssh.ExitError
	var missing *xssh.ExitMissingError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return cli.Exit("", 130) // interrupted, as a shell reports SIGINT
	case errors.As(err, &exit) && exit.Signal() != "":
		return cli.Exit(fmt.Sprintf("alknet ssh: remote command killed by signal %s", exit.Signal()), 255)
	case errors.As(err, &exit):
		return cli.Exit("", exit.ExitStatus())
	case errors.As(err, &missing):
		return cli.Exit("alknet ssh: the remote command ended without an exit status", 255)
	}
	return err
}

// loggedDialer is the data dir's dialer with the command's logger, for
// long-running clients that log their connection's events.
func loggedDialer(c *cli.Context) (*core.Dialer, *slog.Logger, error) {
	logger, err := newLogger(c)
	if err != nil {
		return nil, nil, err
	}
	d, err := dialer(c)
	if err != nil {
		return nil, nil, err
	}
	d.Logger = logger
	return d, logger, nil
}

// dialSSH connects an SSH client to the address argument with the data
// dir's node key.
func dialSSH(ctx context.Context, c *cli.Context, reconnect bool) (*ssh.Client, *slog.Logger, error) {
	d, logger, err := loggedDialer(c)
	if err != nil {
		return nil, nil, err
	}
	noteAddr(c.Args().First())
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	client, err := ssh.Dial(dctx, ssh.ClientConfig{Dialer: d, Addr: c.Args().First(), Reconnect: reconnect, Logger: logger})
	return client, logger, err
}

// forwardProtocolFlag picks how forward and socks carry connections.
var forwardProtocolFlag = &cli.StringFlag{
	Name:  "forward-protocol",
	Value: "auto",
	Usage: "fwd (alknet/fwd, a QUIC stream per connection), ssh (SSH channels on alknet/ssh), or auto: fwd when the node offers it",
}

// tunnel is what forward and socks need of their connection to a node: an
// alknet/fwd client or an SSH client.
type tunnel interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	Listen(network, addr string) (net.Listener, error)
	Done() <-chan struct{}
	Err() error
	Close() error
}

// earlyDialer is a tunnel that can send a forward's first bytes before the
// node's answer ([ssh.FwdClient.DialEarly]).
type earlyDialer interface {
	DialEarly(ctx context.Context, network, addr string) (net.Conn, error)
}

// sshTunnel is an SSH client as a tunnel.
type sshTunnel struct{ *ssh.Client }

func (t sshTunnel) Listen(network, addr string) (net.Listener, error) {
	return t.Client.Listen(network, addr)
}

// fwdTunnel is an alknet/fwd client as a tunnel.
type fwdTunnel struct{ *ssh.FwdClient }

func (t fwdTunnel) Listen(network, addr string) (net.Listener, error) {
	return t.FwdClient.Listen(network, addr)
}

// dialTunnel connects the tunnel --forward-protocol asks for: alknet/fwd,
// SSH channels, or (auto) alknet/fwd when the node offers it and SSH
// channels when it does not.
func dialTunnel(ctx context.Context, c *cli.Context) (tunnel, *slog.Logger, error) {
	proto := c.String("forward-protocol")
	switch proto {
	case "ssh":
		client, logger, err := dialSSH(ctx, c, true)
		if err != nil {
			return nil, nil, err
		}
		logger.Info("forwarding over SSH channels")
		return sshTunnel{client}, logger, nil
	case "fwd", "auto":
	default:
		return nil, nil, cli.Exit(fmt.Sprintf("--forward-protocol: want fwd, ssh or auto, got %q", proto), 2)
	}
	d, logger, err := loggedDialer(c)
	if err != nil {
		return nil, nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	fc, err := ssh.DialFwd(dctx, ssh.FwdConfig{Dialer: d, Addr: c.Args().First(), Logger: logger})
	if err == nil {
		logger.Info("forwarding over " + ssh.FwdALPN)
		return fwdTunnel{fc}, logger, nil
	}
	if proto == "fwd" || !errors.Is(err, ssh.ErrFwdNotOffered) {
		return nil, nil, err
	}
	client, logger, err := dialSSH(ctx, c, true)
	if err != nil {
		return nil, nil, err
	}
	logger.Info("forwarding over SSH channels: the node does not offer " + ssh.FwdALPN)
	return sshTunnel{client}, logger, nil
}

// untilStopped runs a long-lived client command: it dials with
// reconnection and runs serve until SIGINT or SIGTERM, which is success.
// Dropped connections are redialled; once the node refuses the key
// (ssh.ErrRefused: revoked, unknown, or without ssh:connect) serve is
// stopped and that is the command's error. The tunnel is the one
// --forward-protocol picks (dialTunnel).
func untilStopped(c *cli.Context, serve func(ctx context.Context, client tunnel, logger *slog.Logger) error) error {
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	client, logger, err := dialTunnel(ctx, c)
	if err != nil {
		return err
	}
	defer client.Close()
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-client.Done():
			cancel()
		case <-sctx.Done():
		}
	})
	err = serve(sctx, client, logger)
	cancel()
	wg.Wait()
	if cerr := client.Err(); errors.Is(cerr, ssh.ErrRefused) {
		return fmt.Errorf("%w; giving up (was this key revoked?)", cerr)
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// forwardSpec is one -L or -R argument.
type forwardSpec struct {
	bind     string // "" when not given, "*" for every interface, else as written
	port     uint16 // listening port; 0 picks one
	host     string // target host as written (IPv6 without brackets)
	hostPort uint16
}

// String returns the spec in OpenSSH's syntax.
func (s forwardSpec) String() string {
	t := strconv.Itoa(int(s.port)) + ":" + bracket(s.host) + ":" + strconv.Itoa(int(s.hostPort))
	if s.bind != "" {
		return bracket(s.bind) + ":" + t
	}
	return t
}

// localAddr is where -L listens: loopback unless a bind address is given.
func (s forwardSpec) localAddr() string { return s.listenAddr("127.0.0.1") }

// remoteAddr is what -R asks the node for, as OpenSSH sends it:
// "localhost" unless a bind address is given.
func (s forwardSpec) remoteAddr() string { return s.listenAddr("localhost") }

// remoteBound is where the node listens for -R once it bound port: the
// bind address as asked ("localhost" unless given, "*" for every
// interface) and port.
func (s forwardSpec) remoteBound(port int) string {
	host := s.bind
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// listenAddr is bind:port, with def for no bind address and "" (every
// interface) for "*".
func (s forwardSpec) listenAddr(def string) string {
	host := s.bind
	switch host {
	case "":
		host = def
	case "*":
		host = ""
	}
	return net.JoinHostPort(host, strconv.Itoa(int(s.port)))
}

// target is the host:port each forwarded connection goes to.
func (s forwardSpec) target() string {
	return net.JoinHostPort(s.host, strconv.Itoa(int(s.hostPort)))
}

func bracket(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// parseForwardSpecs parses the values of one flag.
func parseForwardSpecs(flag string, vals []string) ([]forwardSpec, error) {
	specs := make([]forwardSpec, 0, len(vals))
	for _, v := range vals {
		s, err := parseForwardSpec(v)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, v, err)
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// parseForwardSpec parses OpenSSH's [bind_address:]port:host:hostport, with
// IPv6 addresses in brackets. An empty bind address means every interface,
// like "*".
func parseForwardSpec(v string) (forwardSpec, error) {
	fields, err := splitForward(v)
	if err != nil {
		return forwardSpec{}, err
	}
	var s forwardSpec
	switch len(fields) {
	case 3:
	case 4:
		s.bind = fields[0]
		if s.bind == "" {
			s.bind = "*"
		}
		fields = fields[1:]
	default:
		return forwardSpec{}, errors.New("want [bind_address:]port:host:hostport")
	}
	if s.port, err = parsePort(fields[0], true); err != nil {
		return forwardSpec{}, fmt.Errorf("listening port: %w", err)
	}
	if s.host = fields[1]; s.host == "" {
		return forwardSpec{}, errors.New("empty target host")
	}
	if s.hostPort, err = parsePort(fields[2], false); err != nil {
		return forwardSpec{}, fmt.Errorf("target port: %w", err)
	}
	for _, h := range []string{s.bind, s.host} {
		if strings.ContainsFunc(h, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
			return forwardSpec{}, fmt.Errorf("bad host %q", h)
		}
	}
	return s, nil
}

// splitForward splits at colons outside brackets; a bracketed field must
// be the whole field and loses its brackets.
func splitForward(v string) ([]string, error) {
	var fields []string
	for {
		var f string
		if strings.HasPrefix(v, "[") {
			end := strings.IndexByte(v, ']')
			if end < 0 {
				return nil, errors.New("unclosed '['")
			}
			f, v = v[1:end], v[end+1:]
			if v != "" && v[0] != ':' {
				return nil, errors.New("']' not followed by ':'")
			}
			if !strings.Contains(f, ":") {
				return nil, fmt.Errorf("brackets around %q, which is no IPv6 address", f)
			}
		} else {
			i := strings.IndexByte(v, ':')
			if i < 0 {
				i = len(v)
			}
			f, v = v[:i], v[i:]
			if strings.ContainsAny(f, "[]") {
				return nil, errors.New("brackets inside a field")
			}
		}
		fields = append(fields, f)
		if v == "" {
			return fields, nil
		}
		v = v[1:] // the colon
	}
}

// parsePort parses a decimal port; zero only when zeroOK.
func parsePort(s string, zeroOK bool) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n == 0 && !zeroOK {
		return 0, errors.New("port 0")
	}
	return uint16(n), nil
}
