package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
)

// mustRules parses rules.
func mustRules(t *testing.T, ss ...string) []Rule {
	t.Helper()
	var rs []Rule
	for _, s := range ss {
		r, err := ParseRule(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

// openErr returns the rejection reason of a failed channel open, or 0.
func openErr(err error) xssh.RejectionReason {
	var oe *xssh.OpenChannelError
	if errors.As(err, &oe) {
		return oe.Reason
	}
	return 0
}

// TestForwardPolicy drives direct-tcpip (ssh -L) through the real server
// against the forwarding rules.
func TestForwardPolicy(t *testing.T) {
	e := newEnv(t, nil)
	echo := echoServer(t)
	port := strconv.Itoa(echo.Port)
	aliceKey, alice := newPeer(t, "alice", ScopeConnect, ScopeForward, "team:ops")
	bobKey, bob := newPeer(t, "bob", ScopeConnect, ScopeForward)
	carolKey, carol := newPeer(t, "carol", ScopeConnect) // no ssh:forward
	e.setPeers(alice, bob, carol)
	clients := map[string]*xssh.Client{
		"alice": e.mustDial(aliceKey, "alice"),
		"bob":   e.mustDial(bobKey, "bob"),
		"carol": e.mustDial(carolKey, "carol"),
	}

	tests := []struct {
		name   string
		rules  []string
		who    string
		target string
		want   xssh.RejectionReason // 0: allowed
	}{
		{"default deny", nil, "alice", "127.0.0.1:" + port, xssh.Prohibited},
		{"allow cidr", []string{"allow 127.0.0.0/8"}, "alice", "127.0.0.1:" + port, 0},
		{"allow any does not reach this host", []string{"allow *"}, "alice", "127.0.0.1:" + port, xssh.Prohibited},
		{"allow self", []string{"allow self"}, "alice", "127.0.0.1:" + port, 0},
		{"allow self on the port", []string{"allow self:" + port}, "alice", "localhost:" + port, 0},
		{"scope required", []string{"allow *"}, "carol", "127.0.0.1:" + port, xssh.Prohibited},
		{"deny cidr first", []string{"deny 127.0.0.0/8", "allow *"}, "alice", "127.0.0.1:" + port, xssh.Prohibited},
		{"localhost resolves into denied range", []string{"deny 127.0.0.0/8", "deny ::1", "allow *"}, "alice", "localhost:" + port, xssh.Prohibited},
		{"localhost allowed by name", []string{"allow localhost", "deny *"}, "alice", "localhost:" + port, 0},
		{"name resolving partly into denied range", []string{"deny 10.0.0.0/8", "allow *"}, "alice", "split.example.test:" + port, xssh.Prohibited},
		{"glob does not allow this host", []string{"allow *.example.test"}, "alice", "web.example.test:" + port, xssh.Prohibited},
		{"exact name allows this host", []string{"allow web.example.test"}, "alice", "web.example.test:" + port, 0},
		{"glob denies", []string{"deny *.example.test", "allow self"}, "alice", "web.example.test:" + port, xssh.Prohibited},
		{"glob is case-insensitive", []string{"deny *.example.test", "allow self"}, "alice", "WEB.Example.Test.:" + port, xssh.Prohibited},
		{"glob miss", []string{"allow *.example.test"}, "alice", "db.internal.test:" + port, xssh.Prohibited},
		{"port range in", []string{"allow 127.0.0.1:1-" + port}, "alice", "127.0.0.1:" + port, 0},
		{"port range out", []string{"allow 127.0.0.1:1-" + strconv.Itoa(echo.Port-1)}, "alice", "127.0.0.1:" + port, xssh.Prohibited},
		{"principal by id", []string{"allow self principals=alice"}, "alice", "127.0.0.1:" + port, 0},
		{"principal by scope", []string{"allow self principals=team:ops"}, "alice", "127.0.0.1:" + port, 0},
		{"principal mismatch", []string{"allow self principals=team:ops"}, "bob", "127.0.0.1:" + port, xssh.Prohibited},
		{"reserved name", []string{"allow *"}, "alice", "alknet-admin:1", xssh.Prohibited},
		{"call target without hook", []string{"allow *"}, "alice", "alknet-call:0", xssh.Prohibited},
		{"unresolvable name", []string{"allow *"}, "alice", "no-such-host.invalid:" + port, xssh.ConnectionFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.setPolicy(Policy{Forward: mustRules(t, tt.rules...)})
			conn, err := clients[tt.who].Dial("tcp", tt.target)
			if tt.want != 0 {
				if got := openErr(err); got != tt.want {
					t.Fatalf("dial %s as %s with %q: err %v (reason %v), want %v", tt.target, tt.who, tt.rules, err, got, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial %s as %s with %q: %v", tt.target, tt.who, tt.rules, err)
			}
			if got := roundTrip(t, conn, "ping"); got != "ping" {
				t.Fatalf("echo through forward = %q, want ping", got)
			}
		})
	}

	t.Run("failed dial is an open failure", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := ln.Addr().String()
		_ = ln.Close()
		e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
		_, err = clients["alice"].Dial("tcp", closed)
		if got := openErr(err); got != xssh.ConnectionFailed {
			t.Fatalf("dial to a closed port: %v, want open failure %v", err, xssh.ConnectionFailed)
		}
	})

	t.Run("policy change applies to the next channel", func(t *testing.T) {
		e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
		first, err := clients["alice"].Dial("tcp", echo.String())
		if err != nil {
			t.Fatal(err)
		}
		e.setPolicy(Policy{})
		if _, err := clients["alice"].Dial("tcp", echo.String()); openErr(err) != xssh.Prohibited {
			t.Fatalf("after the policy change: %v, want prohibited", err)
		}
		// The channel opened before keeps working.
		if got := roundTrip(t, first, "still"); got != "still" {
			t.Fatalf("open channel after policy change = %q", got)
		}
	})

	// Destinations never reach the log.
	if lines := e.logs.lines("127.0.0.1:" + port); len(lines) > 0 {
		t.Errorf("log names a forwarding destination:\n%s", strings.Join(lines, "\n"))
	}
	if lines := e.logs.lines("example.test"); len(lines) > 0 {
		t.Errorf("log names a forwarding destination:\n%s", strings.Join(lines, "\n"))
	}
}

// TestRemoteForward drives tcpip-forward (ssh -R) and the forwarded-tcpip
// TestForwardThisHost opens direct-tcpip channels, with the host text sent
// as written (as ssh -W and alknet forward send it), to every spelling of
// this host: with "deny 127.0.0.0/8", "deny ::1", "allow *" each is refused
// "administratively prohibited", while a loopback listener an explicit rule
// names still answers. "allow self" shows the spellings really reach the
// listener on 127.0.0.1, which is why they must be judged as this host.
func TestForwardThisHost(t *testing.T) {
	e := newEnv(t, nil)
	secret := echoServer(t) // on 127.0.0.1, meant to stay unreachable
	open := echoServer(t)   // on 127.0.0.1, allowed by an explicit rule
	key, alice := newPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(alice)
	c := e.mustDial(key, "alice")
	direct := func(host string, port int) (xssh.Channel, error) {
		ch, reqs, err := c.OpenChannel("direct-tcpip", xssh.Marshal(directTCPIPMsg{
			Host: host, Port: uint32(port), OrigAddr: "127.0.0.1", OrigPort: 1,
		}))
		if err != nil {
			return nil, err
		}
		go xssh.DiscardRequests(reqs)
		return ch, nil
	}
	spellings := []string{
		"0", "0.0.0.0", "::", "::ffff:0.0.0.0", "::ffff:127.0.0.1", "2130706433", "0x7f000001",
		"0177.0.0.1", "127.1", "127.0.0.2", "localhost", "LOCALHOST.", "::1",
	}
	// The node's own interface addresses are this host too.
	if ifAddrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifAddrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				spellings = append(spellings, ipn.IP.String())
				break
			}
		}
	}
	e.setPolicy(Policy{Forward: mustRules(t, "allow 127.0.0.1:"+strconv.Itoa(open.Port), "deny 127.0.0.0/8", "deny ::1", "allow *")})
	for _, host := range spellings {
		t.Run(host, func(t *testing.T) {
			ch, err := direct(host, secret.Port)
			if got := openErr(err); got != xssh.Prohibited {
				if ch != nil {
					_ = ch.Close()
				}
				t.Fatalf("direct-tcpip to %s:%d: %v, want %v", host, secret.Port, err, xssh.Prohibited)
			}
		})
	}
	t.Run("explicitly allowed listener", func(t *testing.T) {
		ch, err := direct("127.0.0.1", open.Port)
		if err != nil {
			t.Fatalf("direct-tcpip to the allowed listener: %v", err)
		}
		if got := roundTrip(t, ch, "ping"); got != "ping" {
			t.Fatalf("echo = %q, want ping", got)
		}
	})
	t.Run("the spellings reach 127.0.0.1", func(t *testing.T) {
		e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
		for _, host := range []string{"0", "0.0.0.0", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "::ffff:127.0.0.1"} {
			ch, err := direct(host, secret.Port)
			if err != nil {
				t.Fatalf("direct-tcpip to %s with allow self: %v", host, err)
			}
			if got := roundTrip(t, ch, "ping"); got != "ping" {
				t.Fatalf("echo via %s = %q, want ping", host, got)
			}
		}
	})
}

// TestForwardedConns checks Server.Forwarded: the connection a direct-tcpip
// channel opened is reported, by the address its target sees, while it is
// open, and a connection of anyone else is not.
func TestForwardedConns(t *testing.T) {
	e := newEnv(t, nil)
	key, alice := newPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(alice)
	e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
	c := e.mustDial(key, "alice")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- conn
		}
	}()
	remoteOf := func(conn net.Conn) netip.AddrPort {
		t.Cleanup(func() { _ = conn.Close() })
		return conn.RemoteAddr().(*net.TCPAddr).AddrPort()
	}

	ch, err := c.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	target := <-accepted
	fwd := remoteOf(target)
	if !e.srv.Forwarded(fwd) {
		t.Errorf("Forwarded(%v) = false for the connection a channel opened", fwd)
	}
	direct, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = direct.Close() })
	if own := remoteOf(<-accepted); e.srv.Forwarded(own) {
		t.Errorf("Forwarded(%v) = true for a connection the server did not open", own)
	}
	if mapped := netip.AddrPortFrom(netip.AddrFrom16(fwd.Addr().As16()), fwd.Port()); !e.srv.Forwarded(mapped) {
		t.Errorf("Forwarded(%v) = false for the IPv4-mapped form", mapped)
	}
	_ = ch.Close()
	_ = target.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.srv.Forwarded(fwd) {
		if time.Now().After(deadline) {
			t.Fatalf("Forwarded(%v) still true after the channel closed", fwd)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// channels it opens.
func TestRemoteForward(t *testing.T) {
	e := newEnv(t, nil)
	key, peer := newPeer(t, "alice", ScopeConnect, ScopeRemoteForward)
	noKey, noScope := newPeer(t, "bob", ScopeConnect, ScopeForward)
	e.setPeers(peer, noScope)
	c := e.mustDial(key, "alice")

	t.Run("loopback allowed by default", func(t *testing.T) {
		ln, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("remote forward on loopback: %v", err)
		}
		defer ln.Close()
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
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if got := roundTrip(t, conn, "hello"); got != "hello" {
			t.Fatalf("through remote forward = %q", got)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cancel closes the listener", func(t *testing.T) {
		ln, err := c.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil { // sends cancel-tcpip-forward
			t.Fatalf("cancel: %v", err)
		}
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			t.Fatal("listener still accepts after cancel")
		}
	})
	t.Run("wildcard denied by default", func(t *testing.T) {
		if ln, err := c.Listen("tcp", "0.0.0.0:0"); err == nil {
			ln.Close()
			t.Fatal("bind on 0.0.0.0 allowed by default")
		}
	})
	t.Run("wildcard allowed by rule", func(t *testing.T) {
		e.setPolicy(Policy{RemoteForward: mustRules(t, "allow 0.0.0.0")})
		defer e.setPolicy(Policy{})
		ln, err := c.Listen("tcp", "0.0.0.0:0")
		if err != nil {
			t.Fatalf("bind on 0.0.0.0 with a rule: %v", err)
		}
		ln.Close()
	})
	t.Run("loopback denied by rule", func(t *testing.T) {
		e.setPolicy(Policy{RemoteForward: mustRules(t, "deny 127.0.0.0/8")})
		defer e.setPolicy(Policy{})
		if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
			ln.Close()
			t.Fatal("bind allowed despite a deny rule")
		}
	})
	t.Run("scope required", func(t *testing.T) {
		cb := e.mustDial(noKey, "bob")
		if ln, err := cb.Listen("tcp", "127.0.0.1:0"); err == nil {
			ln.Close()
			t.Fatal("remote forward without ssh:remote-forward")
		}
	})
}

// TestStreamLocal drives direct-streamlocal and streamlocal-forward.
func TestStreamLocal(t *testing.T) {
	// Unix socket paths are short; t.TempDir can be too long.
	dir, err := os.MkdirTemp("", "alkssh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	e := newEnv(t, nil)
	key, peer := newPeer(t, "alice", ScopeConnect, ScopeForward, ScopeRemoteForward)
	e.setPeers(peer)
	c := e.mustDial(key, "alice")

	target := filepath.Join(dir, "target.sock")
	ln, err := net.Listen("unix", target)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(conn, conn)
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-served
	})

	t.Run("connect denied without a listed path", func(t *testing.T) {
		if _, err := c.Dial("unix", target); openErr(err) != xssh.Prohibited {
			t.Fatalf("dial unix: %v, want prohibited", err)
		}
	})
	t.Run("connect allowed", func(t *testing.T) {
		e.setPolicy(Policy{StreamLocalConnect: []string{filepath.Join(dir, "*.sock")}})
		conn, err := c.Dial("unix", target)
		if err != nil {
			t.Fatal(err)
		}
		if got := roundTrip(t, conn, "unix"); got != "unix" {
			t.Fatalf("through direct-streamlocal = %q", got)
		}
	})
	t.Run("listen denied without a listed path", func(t *testing.T) {
		e.setPolicy(Policy{})
		if l, err := c.ListenUnix(filepath.Join(dir, "remote.sock")); err == nil {
			l.Close()
			t.Fatal("streamlocal-forward allowed without a listed path")
		}
	})
	t.Run("listen allowed", func(t *testing.T) {
		path := filepath.Join(dir, "remote.sock")
		e.setPolicy(Policy{StreamLocalListen: []string{path}})
		l, err := c.ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket mode: %v, %v; want 0600", fi.Mode(), err)
		}
		go func() {
			rc, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(rc, rc)
			rc.Close()
		}()
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		if got := roundTrip(t, conn, "back"); got != "back" {
			t.Fatalf("through streamlocal-forward = %q", got)
		}
		l.Close()
	})
}

// TestCallChannel connects alknet-call to the CallChannel hook.
func TestCallChannel(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.CallChannel = func(ctx context.Context, conn core.Conn) error {
			s, err := conn.AcceptStream(ctx)
			if err != nil {
				return err
			}
			b, err := io.ReadAll(s)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(s, "%s %s %s", conn.ALPN(), conn.Peer().Identity, b)
			if err == nil {
				err = s.CloseWrite()
			}
			return err
		}
	})
	key, peer := newPeer(t, "alice", ScopeConnect) // no ssh:forward needed
	e.setPeers(peer)
	c := e.mustDial(key, "alice")
	conn, err := c.Dial("tcp", "alknet-call:0")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := roundTrip(t, conn, "hi"), "alknet-call alice hi"; got != want {
		t.Fatalf("call channel answered %q, want %q", got, want)
	}
}
