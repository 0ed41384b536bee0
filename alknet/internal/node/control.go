package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/fs"
	"github.com/alkdev/alknet/msg"
)

// The control socket: <data-dir>/alknet.sock, a unix socket (mode 0600)
// through which the commands run beside a node reach it. Whoever can open
// it is the node's operator, with every scope, as with tailscaled, dockerd
// or kubo's API; it is never reachable from the network.
//
// Each socket connection carries one stream of one protocol. The client
// opens with a line naming it,
//
//	alknet-control 1 <alpn>\n
//
// and the node answers "ok <nodeid>\n" (or "error <reason>\n" and closes);
// then the stream is the protocol's, served by its handler as a
// single-stream connection whose peer is the operator. A client wanting
// more streams (fs, msg's watch) opens more socket connections.

// ControlSocket is the control socket's name in the data dir.
const ControlSocket = "alknet.sock"

// ControlPath is the control socket of the node on dataDir.
func ControlPath(dataDir string) string { return filepath.Join(dataDir, ControlSocket) }

// controlALPNs are the protocols the control socket serves.
var controlALPNs = []string{call.ALPN, fs.ALPN, msg.ALPN}

// maxSocketPath bounds a unix socket's path, with its terminating NUL
// (sun_path: 108 bytes on Linux, 104 on the BSDs and macOS).
const maxSocketPath = 104

// controlHello starts a control connection; the ALPN follows.
const controlHello = "alknet-control 1 "

// controlHelloTimeout bounds the exchange of the first lines.
const controlHelloTimeout = 5 * time.Second

// maxControlLine bounds a first line.
const maxControlLine = 256

// Operator is the identity of whoever opens the control socket: every
// scope. It never attaches as a worker: the socket's call handler has no
// peer set.
var Operator = core.Identity{ID: "operator", Scopes: []string{"*"}}

// ErrNoNode is returned by [DialControl] when no node runs on the data dir.
var ErrNoNode = errors.New("no node runs on this data dir")

// ErrNodeRunning is returned by [Run] when a node already runs on the data
// dir.
var ErrNodeRunning = errors.New("a node already runs on this data dir")

// control serves the control socket.
type control struct {
	path     string
	id       core.NodeID
	handlers map[string]core.Handler // by ALPN
	logger   *slog.Logger

	mu    sync.Mutex
	conns map[core.Conn]struct{}
	done  bool
	wg    sync.WaitGroup
}

// checkControl fails with [ErrNodeRunning] if a node answers on path.
func checkControl(path string) error {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("%w: its control socket %s answers; stop that node first", ErrNodeRunning, path)
	}
	return nil
}

// listen opens the socket: a stale one (no node answers) is removed first.
func (c *control) listen() (func(context.Context) error, func() error, error) {
	if err := checkControl(c.path); err != nil {
		return nil, nil, err
	}
	if err := os.Remove(c.path); err != nil && !errors.Is(err, iofs.ErrNotExist) {
		return nil, nil, fmt.Errorf("control socket: removing the stale %s: %w", c.path, err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: c.path, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	// The data dir is the node user's (0700); the socket is too. Closing
	// the listener removes the file.
	if err := os.Chmod(c.path, 0o600); err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("control socket: %w", err)
	}
	c.logger.Info("control socket", "path", c.path)
	return func(ctx context.Context) error { return c.serve(ctx, ln) }, ln.Close, nil
}

// serve accepts until ctx ends; then it closes the listener and the
// operator's connections and waits for their handlers.
func (c *control) serve(ctx context.Context, ln *net.UnixListener) error {
	hctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	defer context.AfterFunc(ctx, func() {
		ln.Close()
		c.mu.Lock()
		c.done = true
		for conn := range c.conns {
			_ = conn.CloseWithError(core.CodeShutdown, "node stopping")
		}
		c.mu.Unlock()
		stop()
	})()
	defer c.wg.Wait()
	for {
		uc, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control socket: %w", err)
		}
		c.wg.Go(func() { c.handle(hctx, uc) })
	}
}

// handle checks who connects, reads the first line and hands the stream to
// the protocol's handler.
func (c *control) handle(ctx context.Context, uc *net.UnixConn) {
	if err := sameUser(uc); err != nil {
		c.logger.Warn("control socket: refused a connection", "err", err)
		uc.Close()
		return
	}
	_ = uc.SetDeadline(time.Now().Add(controlHelloTimeout))
	alpn, err := readHello(uc)
	refuse := func(reason string) {
		fmt.Fprintf(uc, "error %s\n", reason)
		uc.Close()
	}
	if err != nil {
		refuse(err.Error())
		return
	}
	h, ok := c.handlers[alpn]
	if !ok {
		refuse(fmt.Sprintf("%s is not served here (disabled, or not a control protocol)", alpn))
		return
	}
	if _, err := fmt.Fprintf(uc, "ok %s\n", c.id); err != nil {
		uc.Close()
		return
	}
	_ = uc.SetDeadline(time.Time{})
	op := Operator
	peer := core.Peer{RemoteAddr: uc.LocalAddr(), NodeID: c.id, Identity: &op}
	conn := core.NewStreamConn(unixStream{uc}, alpn, peer, c.logger.With("alpn", alpn, "remote_ip", "control"))
	c.mu.Lock()
	if c.done {
		c.mu.Unlock()
		_ = conn.CloseWithError(core.CodeShutdown, "node stopping")
		return
	}
	if c.conns == nil {
		c.conns = make(map[core.Conn]struct{})
	}
	c.conns[conn] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.conns, conn)
		c.mu.Unlock()
		_ = conn.CloseWithError(core.CodeNoError, "")
	}()
	if err := h.Serve(ctx, conn); err != nil {
		conn.Logger().Warn("control socket: handler failed", "err", err)
	}
}

// readHello reads the client's first line and returns the ALPN it names.
// It reads byte by byte, so nothing of the protocol after it is consumed.
func readHello(r io.Reader) (string, error) {
	line, err := readLine(r)
	if err != nil {
		return "", err
	}
	alpn, ok := strings.CutPrefix(line, controlHello)
	if !ok || alpn == "" {
		return "", errors.New("want \"" + controlHello + "ALPN\"")
	}
	return alpn, nil
}

// readLine reads one line of at most maxControlLine bytes, byte by byte.
func readLine(r io.Reader) (string, error) {
	var b strings.Builder
	var one [1]byte
	for b.Len() <= maxControlLine {
		if _, err := io.ReadFull(r, one[:]); err != nil {
			return "", fmt.Errorf("control socket: %w", err)
		}
		if one[0] == '\n' {
			return b.String(), nil
		}
		b.WriteByte(one[0])
	}
	return "", errors.New("control socket: first line too long")
}

// unixStream is a socket connection as a [core.Stream].
type unixStream struct{ *net.UnixConn }

// Abort closes the connection: a unix socket has no reset, so the peer
// sees the end of the stream, or an error on its next write.
func (s unixStream) Abort(core.ErrorCode) { _ = s.UnixConn.Close() }

// DialControl connects to the control socket of the node on dataDir for
// alpn (alknet/call, alknet/fs, alknet/msg). It returns [ErrNoNode] when
// no node runs there (no socket, or a stale one). The connection's peer is
// the node; each OpenStream after the first opens another socket
// connection, so a protocol that opens many streams (fs) works; it is not
// MultiStream, as the streams are not multiplexed in one connection.
func DialControl(ctx context.Context, dataDir, alpn string) (core.Conn, error) {
	c := &controlConn{path: ControlPath(dataDir), alpn: alpn}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	st, id, err := c.dial(ctx)
	if err != nil {
		c.cancel(err)
		return nil, err
	}
	c.first = st
	c.peer = core.Peer{RemoteAddr: &net.UnixAddr{Name: c.path, Net: "unix"}, NodeID: id}
	return c, nil
}

// controlConn is the client side of control socket connections.
type controlConn struct {
	path, alpn string
	peer       core.Peer
	ctx        context.Context
	cancel     context.CancelCauseFunc

	mu      sync.Mutex
	first   core.Stream // from the dial, for the first OpenStream
	streams map[*controlStream]struct{}
}

// controlStream is a stream of a controlConn, which forgets it once closed.
type controlStream struct {
	core.Stream
	c *controlConn
}

func (s *controlStream) Close() error {
	s.c.forget(s)
	return s.Stream.Close()
}

func (s *controlStream) Abort(code core.ErrorCode) {
	s.c.forget(s)
	s.Stream.Abort(code)
}

func (c *controlConn) forget(s *controlStream) {
	c.mu.Lock()
	delete(c.streams, s)
	c.mu.Unlock()
}

// track makes st one of c's streams; c.mu must be held.
func (c *controlConn) track(st core.Stream) core.Stream {
	cs := &controlStream{Stream: st, c: c}
	if c.streams == nil {
		c.streams = make(map[*controlStream]struct{})
	}
	c.streams[cs] = struct{}{}
	return cs
}

// dial opens one socket connection and exchanges the first lines.
func (c *controlConn) dial(ctx context.Context) (core.Stream, core.NodeID, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, core.NodeID{}, ErrNoNode
		}
		return nil, core.NodeID{}, fmt.Errorf("control socket %s: %w", c.path, err)
	}
	uc := nc.(*net.UnixConn)
	deadline := time.Now().Add(controlHelloTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = uc.SetDeadline(deadline)
	fail := func(err error) (core.Stream, core.NodeID, error) {
		uc.Close()
		return nil, core.NodeID{}, fmt.Errorf("control socket %s: %w", c.path, err)
	}
	if _, err := fmt.Fprintf(uc, "%s%s\n", controlHello, c.alpn); err != nil {
		return fail(err)
	}
	line, err := readLine(uc)
	if err != nil {
		return fail(err)
	}
	if reason, ok := strings.CutPrefix(line, "error "); ok {
		return fail(errors.New(reason))
	}
	text, ok := strings.CutPrefix(line, "ok ")
	if !ok {
		return fail(fmt.Errorf("unexpected answer %q", line))
	}
	id, err := core.ParseNodeID(text)
	if err != nil {
		return fail(err)
	}
	_ = uc.SetDeadline(time.Time{})
	return unixStream{uc}, id, nil
}

func (c *controlConn) ALPN() string             { return c.alpn }
func (c *controlConn) Peer() core.Peer          { return c.peer }
func (c *controlConn) Context() context.Context { return c.ctx }
func (c *controlConn) Logger() *slog.Logger     { return slog.Default() }
func (c *controlConn) MultiStream() bool        { return false }

// AcceptStream fails: the node opens no stream to the operator.
func (c *controlConn) AcceptStream(context.Context) (core.Stream, error) {
	return nil, core.ErrSingleStream
}

// OpenStream returns the stream of the dial, then new socket connections.
func (c *controlConn) OpenStream(ctx context.Context) (core.Stream, error) {
	c.mu.Lock()
	if err := context.Cause(c.ctx); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("control socket: %w", net.ErrClosed)
	}
	if st := c.first; st != nil {
		c.first = nil
		defer c.mu.Unlock()
		return c.track(st), nil
	}
	c.mu.Unlock()
	st, _, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		st.Abort(core.CodeNoError)
		return nil, fmt.Errorf("control socket: %w", net.ErrClosed)
	}
	return c.track(st), nil
}

// CloseWithError closes every socket connection of c.
func (c *controlConn) CloseWithError(code core.ErrorCode, reason string) error {
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return nil
	}
	c.cancel(&core.CloseError{Code: code, Reason: reason})
	var open []core.Stream
	if c.first != nil {
		open = append(open, c.first)
		c.first = nil
	}
	for st := range c.streams {
		open = append(open, st.Stream)
	}
	c.streams = nil
	c.mu.Unlock()
	for _, st := range open {
		if code == core.CodeNoError {
			_ = st.Close()
		} else {
			st.Abort(code)
		}
	}
	return nil
}

// newControl makes the control socket's server: alknet/call with its own
// handler (on the node's registry, without a peer set, so the operator is
// never attached as a worker), and the node's fs and msg handlers.
func newControl(n *node, router *core.Router, path string) (*control, error) {
	c := &control{path: path, id: n.id, handlers: map[string]core.Handler{}, logger: n.logger}
	for _, alpn := range controlALPNs {
		if _, ok := router.Handler(alpn); !ok {
			continue
		}
		if alpn == call.ALPN {
			h, err := call.New(call.Config{Registry: n.calls, Identities: n.identities, Logger: n.logger})
			if err != nil {
				return nil, err
			}
			c.handlers[alpn] = h
			continue
		}
		h, _ := router.Handler(alpn)
		c.handlers[alpn] = h
	}
	return c, nil
}
