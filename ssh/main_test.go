package ssh

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// bridgeEnv, when set, turns the test binary into a ProxyCommand bridge for
// stock OpenSSH: it dials the pinned node address it names and copies stdin
// and stdout to one alknet/ssh stream. bridgeNetEnv picks "quic" or "tcp".
const (
	bridgeEnv    = "ALKNET_SSH_TEST_BRIDGE"
	bridgeNetEnv = "ALKNET_SSH_TEST_BRIDGE_NETWORK"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(bridgeEnv); addr != "" {
		os.Exit(runBridge(addr, core.Network(os.Getenv(bridgeNetEnv))))
	}
	goleak.VerifyTestMain(m)
}

// runBridge is a minimal `alknet pipe --alpn alknet/ssh`. OpenSSH ends its
// ProxyCommand with SIGHUP; the bridge then closes the connection, so the
// server sees the end at once instead of at the idle timeout.
func runBridge(addr string, network core.Network) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	d := &core.Dialer{Network: network}
	conn, err := d.Dial(ctx, addr, ALPN)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bridge:", err)
		return 1
	}
	defer conn.CloseWithError(core.CodeNoError, "")
	s, err := conn.OpenStream(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bridge:", err)
		return 1
	}
	go func() {
		_, _ = io.Copy(s, os.Stdin)
		_ = s.CloseWrite()
	}()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(os.Stdout, s)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	_ = os.Stdout.Close()
	return 0
}

// env is a running node serving an ssh Server, with a live directory of
// peers and a swappable policy.
type env struct {
	t    *testing.T
	srv  *Server
	node *coretest.Node
	live *core.LiveDirectory
	pol  atomic.Pointer[Policy]
	logs *syncBuffer
}

// newEnv starts a node; edit adjusts the server config before New.
func newEnv(t *testing.T, edit func(*Config)) *env {
	t.Helper()
	e := &env{t: t, live: core.NewLiveDirectory(nil, nil), logs: &syncBuffer{}}
	e.pol.Store(&Policy{})
	key := coretest.NewKey(t)
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(e.logs, testLog{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{
		HostKey:    key,
		Identities: e.live,
		Policy:     e.pol.Load,
		Logger:     logger,
		LookupIP:   fakeLookup,
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.node = coretest.Start(t, core.Config{Key: key, Identities: e.live, Logger: logger}, srv)
	return e
}

// setPeers installs a new directory.
func (e *env) setPeers(peers ...core.PeerEntry) {
	e.t.Helper()
	d, err := core.NewDirectory(peers, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.live.Store(d)
}

// setPolicy installs a new policy.
func (e *env) setPolicy(p Policy) {
	e.t.Helper()
	if err := p.Validate(); err != nil {
		e.t.Fatal(err)
	}
	e.pol.Store(&p)
}

// dial opens an SSH client on a fresh QUIC connection to the node.
func (e *env) dial(signer xssh.Signer, user string) (*xssh.Client, error) {
	e.t.Helper()
	conn := e.node.Dial(e.t, core.NetworkQUIC, nil, ALPN)
	return e.dialOn(conn, signer, user)
}

// dialOn opens an SSH client on a new stream of conn.
func (e *env) dialOn(conn core.Conn, signer xssh.Signer, user string) (*xssh.Client, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := conn.OpenStream(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	nc := newStreamConn(st, nil)
	cc, chans, reqs, err := xssh.NewClientConn(nc, "alknet-test", &xssh.ClientConfig{
		User:            user,
		Auth:            []xssh.AuthMethod{xssh.PublicKeys(signer)},
		HostKeyCallback: xssh.FixedHostKey(e.srv.HostKey()),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	c := xssh.NewClient(cc, chans, reqs)
	e.t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

// mustDial is dial that fails the test on error.
func (e *env) mustDial(signer xssh.Signer, user string) *xssh.Client {
	e.t.Helper()
	c, err := e.dial(signer, user)
	if err != nil {
		e.t.Fatalf("ssh login as %s: %v", user, err)
	}
	return c
}

// newPeer makes a fresh ed25519 key and its peer entry.
func newPeer(t *testing.T, id string, scopes ...string) (xssh.Signer, core.PeerEntry) {
	t.Helper()
	key := coretest.NewKey(t)
	signer, err := xssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return signer, core.PeerEntry{ID: id, NodeIDs: []core.NodeID{coretest.NodeID(key)}, Scopes: scopes}
}

// newCA makes a certificate authority key.
func newCA(t *testing.T) xssh.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := xssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeLookup resolves test names and falls back to the system resolver
// (for "localhost").
func fakeLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	switch host {
	case "web.example.test", "db.internal.test":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	case "split.example.test":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.9.9.9")}, nil
	case "private.example.test":
		return []netip.Addr{netip.MustParseAddr("10.1.2.3")}, nil
	}
	if strings.HasSuffix(host, ".invalid") {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// echoServer listens on 127.0.0.1 and echoes each connection until EOF.
// The test's end closes the listener and every connection.
func echoServer(t *testing.T) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed { // accepted as the test ended: nobody else closes it
				mu.Unlock()
				_ = c.Close()
				return
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().(*net.TCPAddr)
}

// roundTrip writes msg to rw, half-closes it and reads the answer to EOF.
func roundTrip(t *testing.T, rw io.ReadWriteCloser, msg string) string {
	t.Helper()
	if _, err := io.WriteString(rw, msg); err != nil {
		t.Fatal(err)
	}
	if cw, ok := rw.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	got, err := io.ReadAll(rw)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	_ = rw.Close()
	return string(got)
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct{ coretest.Buffer }

// lines returns the logged lines containing all of parts.
func (b *syncBuffer) lines(parts ...string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		ok := l != ""
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// testLog sends log output to t.Log while the test runs.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
