package ssh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// clientPeer makes a client key and its peer entry.
func clientPeer(t *testing.T, id string, scopes ...string) (ed25519.PrivateKey, core.PeerEntry) {
	t.Helper()
	key := coretest.NewKey(t)
	return key, core.PeerEntry{ID: id, NodeIDs: []core.NodeID{coretest.NodeID(key)}, Scopes: scopes}
}

// newClient dials the env's node with key and closes the client at the
// test's end.
func (e *env) newClient(key ed25519.PrivateKey, reconnect bool) *Client {
	e.t.Helper()
	c, err := e.dialClient(key, reconnect)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (e *env) dialClient(key ed25519.PrivateKey, reconnect bool) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, ClientConfig{
		Dialer:    &core.Dialer{Key: key, Network: core.NetworkQUIC},
		Addr:      e.node.Addr,
		Reconnect: reconnect,
		Logger:    e.srv.cfg.Logger,
	})
}

// restart stops the node and starts it again on the same address with the
// same key, directory and server, as a node restart does.
func (e *env) restart() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.node.Endpoint.Shutdown(ctx); err != nil {
		e.t.Fatal(err)
	}
	e.node = coretest.Start(e.t, core.Config{Key: e.node.Key, Addr: e.node.HostPort, Identities: e.live, Logger: e.srv.cfg.Logger}, e.srv)
}

func TestClientDial(t *testing.T) {
	e := newEnv(t, nil)
	echo := echoServer(t)
	key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(peer)
	e.setPolicy(Policy{Forward: mustRules(t, "deny 10.0.0.0/8", "allow self")})
	c := e.newClient(key, false)
	ctx := context.Background()

	conn, err := c.DialContext(ctx, "tcp", echo.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, conn, "ping"); got != "ping" {
		t.Fatalf("echo through the client = %q", got)
	}

	refused := coretest.RefusedAddr(t)
	for _, tc := range []struct {
		name, addr string
		want       error
	}{
		{"denied by policy", "10.1.2.3:80", os.ErrPermission},
		{"name resolving into a denied range", "private.example.test:80", os.ErrPermission},
		{"refused", refused, syscall.ECONNREFUSED},
		{"unresolvable", "nothing.invalid:80", syscall.EHOSTUNREACH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.DialContext(ctx, "tcp", tc.addr)
			if !errors.Is(err, tc.want) {
				t.Fatalf("dial %s: %v, want an error matching %v", tc.addr, err, tc.want)
			}
			if _, ok := errors.AsType[*xssh.OpenChannelError](err); !ok {
				t.Errorf("dial %s: %v does not unwrap to an OpenChannelError", tc.addr, err)
			}
		})
	}
	if _, err := c.DialContext(ctx, "udp", echo.String()); err == nil {
		t.Error("udp accepted")
	}
}

func TestClientRefusesAnotherHostKey(t *testing.T) {
	// The SSH host key differs from the node key TLS verified.
	e := newEnv(t, func(c *Config) { c.HostKey = coretest.NewKey(t) })
	key, peer := clientPeer(t, "alice", ScopeConnect)
	e.setPeers(peer)
	if c, err := e.dialClient(key, false); err == nil {
		c.Close()
		t.Fatal("client accepted a host key that is not the node key")
	} else if !strings.Contains(err.Error(), "host key") {
		t.Fatalf("dial: %v, want a host key mismatch", err)
	}
}

func TestClientKeyIsTheIdentity(t *testing.T) {
	e := newEnv(t, nil)
	key, _ := clientPeer(t, "stranger", ScopeConnect) // not in the directory
	if c, err := e.dialClient(key, false); err == nil {
		c.Close()
		t.Fatal("an unknown key logged in")
	}
	if _, err := Dial(context.Background(), ClientConfig{Dialer: &core.Dialer{}, Addr: e.node.Addr}); err == nil {
		t.Error("Dial without any key succeeded")
	}
}

func TestClientSession(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Exec = &Exec{} })
	key, peer := clientPeer(t, "alice", ScopeConnect, ScopeShell)
	e.setPeers(peer)
	c := e.newClient(key, false)
	s, err := c.Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Output("echo ok; echo $ALKNET_IDENTITY")
	if err != nil || string(out) != "ok\nalice\n" {
		t.Fatalf("exec: %q, %v", out, err)
	}
	s2, err := c.Session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	err = s2.Run("exit 3")
	if ee, ok := errors.AsType[*xssh.ExitError](err); !ok || ee.ExitStatus() != 3 {
		t.Fatalf("exit 3: %v", err)
	}
}

// acceptEcho serves one connection of ln as an echo, reporting its error.
func acceptEcho(ln net.Listener) <-chan error {
	done := make(chan error, 1)
	go func() {
		rc, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer rc.Close()
		_, err = io.Copy(rc, rc)
		done <- err
	}()
	return done
}

// listening starts a node and a client with a remote listener on the
// node's loopback.
func listening(t *testing.T, reconnect bool) (*env, *Client, *RemoteListener) {
	t.Helper()
	e := newEnv(t, nil)
	key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward, ScopeRemoteForward)
	e.setPeers(peer)
	c := e.newClient(key, reconnect)
	l, err := c.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return e, c, l
}

func TestClientRemoteListener(t *testing.T) {
	_, c, l := listening(t, false)
	addr := l.Addr().String()
	if l.Addr().(*net.TCPAddr).Port == 0 {
		t.Fatalf("Addr %s has no port", addr)
	}
	done := acceptEcho(l)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, conn, "hello"); got != "hello" {
		t.Fatalf("through the remote listener = %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	coretest.Eventually(t, 5*time.Second, "the node to close the forward", func() bool {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	if _, err := c.Listen("tcp", "0.0.0.0:0"); err == nil {
		t.Error("a wildcard bind was allowed by default")
	}
}

func TestClientWithoutReconnectEnds(t *testing.T) {
	e, c, l := listening(t, false)
	e.restart()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after the connection ended: %v", err)
	}
	if _, err := c.DialContext(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("dial after the connection ended: %v", err)
	}
}

// TestClientReconnect restarts the node: the client redials, registers its
// remote forward again on the same port, and the listener and dialing
// keep working.
func TestClientReconnect(t *testing.T) {
	e, c, l := listening(t, true)
	echo := echoServer(t)
	e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
	addr := l.Addr().String()

	e.restart()
	start := time.Now()
	// Dialing waits for the new connection.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", echo.String())
	if err != nil {
		t.Fatalf("dial after the restart: %v", err)
	}
	if got := roundTrip(t, conn, "again"); got != "again" {
		t.Fatalf("echo after the restart = %q", got)
	}
	t.Logf("reconnected in %v", time.Since(start))

	// The same remote listener serves the same port on the new node.
	done := acceptEcho(l)
	var rc net.Conn
	coretest.Eventually(t, 10*time.Second, "the remote forward to come back", func() bool {
		rc, err = net.Dial("tcp", addr)
		return err == nil
	})
	if got := roundTrip(t, rc, "back"); got != "back" {
		t.Fatalf("through the restored remote forward = %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// waitEnded waits for c to end and returns why.
func waitEnded(t *testing.T, c *Client, within time.Duration) error {
	t.Helper()
	select {
	case <-c.Done():
		return c.Err()
	case <-time.After(within):
		t.Fatalf("the client still runs %v later (err %v)", within, c.Err())
		return nil
	}
}

// TestClientStopsOnRefusal: a reconnecting client retries network errors
// (TestClientReconnect) but ends, with ErrRefused, once the node refuses its
// key, whether it is revoked while connected or found unknown on a redial.
func TestClientStopsOnRefusal(t *testing.T) {
	tests := []struct {
		name   string
		revoke func(e *env)
	}{
		// The endpoint closes the live connection with CodeRevoked.
		{"revoked while connected", func(e *env) { e.setPeers(); e.node.Endpoint.Revalidate() }},
		// The connection drops for another reason; the redial's login fails.
		{"refused on redial", func(e *env) { e.setPeers(); e.restart() }},
		// Still known, but without ssh:connect.
		{"scope removed, refused on redial", func(e *env) {
			peer := e.live.Load().Peers()[0]
			peer.Scopes = []string{ScopeForward}
			e.setPeers(peer)
			e.restart()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, c, l := listening(t, true)
			tt.revoke(e)
			err := waitEnded(t, c, 10*time.Second)
			if !errors.Is(err, ErrRefused) {
				t.Fatalf("the client ended with %v, want ErrRefused", err)
			}
			if _, err := c.DialContext(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, ErrRefused) {
				t.Errorf("dial after the refusal: %v, want ErrRefused", err)
			}
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Accept after the refusal: %v", err)
			}
		})
	}
}

func TestDialRefusedKey(t *testing.T) {
	e := newEnv(t, nil)
	for _, reconnect := range []bool{false, true} {
		_, err := e.dialClient(coretest.NewKey(t), reconnect)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "refused this key") {
			t.Errorf("Dial with an unknown key (reconnect %v) = %v, want ErrRefused", reconnect, err)
		}
	}
}
