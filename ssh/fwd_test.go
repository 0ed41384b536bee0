package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/ssh/socks5"
)

var fwdNetworks = []core.Network{core.NetworkQUIC, core.NetworkTCP}

// newFwdClient dials the env's node over alknet/fwd with key and closes
// the client at the test's end.
func (e *env) newFwdClient(key ed25519.PrivateKey, network core.Network) *FwdClient {
	e.t.Helper()
	c, err := e.dialFwd(key, network)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (e *env) dialFwd(key ed25519.PrivateKey, network core.Network) (*FwdClient, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return DialFwd(ctx, FwdConfig{
		Dialer:           &core.Dialer{Key: key, Network: network},
		Addr:             e.node.Addr,
		HandshakeTimeout: 10 * time.Second,
		Logger:           e.srv.cfg.Logger,
	})
}

// TestFwdConnect carries bytes both ways through -L over each network,
// with half-closes passed on in both directions.
func TestFwdConnect(t *testing.T) {
	for _, tc := range []struct {
		network core.Network
		early   bool // DialEarly: the bytes go before the node's answer
	}{{fwdNetworks[0], false}, {fwdNetworks[1], false}, {fwdNetworks[0], true}, {fwdNetworks[1], true}} {
		network := tc.network
		t.Run(fmt.Sprintf("%s early=%v", network, tc.early), func(t *testing.T) {
			e := newEnv(t, nil)
			key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward)
			e.setPeers(peer)
			e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
			c := e.newFwdClient(key, network)

			// The target reads to EOF, then answers with what it read,
			// reversed, and closes: the client's half-close must reach it
			// while the answer still comes back.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = ln.Close() })
			served := make(chan error, 1)
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					served <- err
					return
				}
				defer conn.Close()
				got, err := io.ReadAll(conn)
				if err != nil {
					served <- err
					return
				}
				for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
					got[i], got[j] = got[j], got[i]
				}
				_, err = conn.Write(got)
				served <- err
			}()

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			dial := c.DialContext
			if tc.early {
				dial = c.DialEarly
			}
			conn, err := dial(ctx, "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			msg := make([]byte, 3<<20)
			_, _ = rand.Read(msg)
			go func() {
				_, _ = conn.Write(msg)
				_ = conn.(interface{ CloseWrite() error }).CloseWrite()
			}()
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.Close()
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if len(got) != len(msg) || got[0] != msg[len(msg)-1] || got[len(got)-1] != msg[0] {
				t.Fatalf("got %d bytes back, want %d reversed", len(got), len(msg))
			}
			coretest.Eventually(t, 5*time.Second, "the dialled set to empty", func() bool {
				e.srv.dialled.mu.Lock()
				defer e.srv.dialled.mu.Unlock()
				return len(e.srv.dialled.set) == 0
			})
		})
	}
}

// TestFwdSOCKS runs the SOCKS5 server over the fwd client: names are
// resolved by the node and its policy decides.
func TestFwdSOCKS(t *testing.T) {
	curl := coretest.RequireTool(t, "curl")
	e := newEnv(t, nil)
	web, port := webServer(t)
	key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(peer)
	e.setPolicy(Policy{Forward: mustRules(t, "allow web.example.test", "allow 127.0.0.1")})
	c := e.newFwdClient(key, core.NetworkQUIC)
	srv, err := socks5.New(socks5.Config{Dial: c.DialContext, Logger: e.srv.cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	proxy := ln.Addr().String()
	for _, tc := range []struct{ mode, url, want string }{
		{"--socks5-hostname", fmt.Sprintf("http://web.example.test:%d/", port), "hello from web"},
		{"--socks5", web.URL + "/", "hello from web"},
		// Denied by the policy: SOCKS reply 2, "not allowed by ruleset".
		{"--socks5-hostname", fmt.Sprintf("http://private.example.test:%d/", port), "(97)"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, _ := exec.CommandContext(ctx, curl, "-sS", "--noproxy", "", tc.mode, proxy, tc.url).CombinedOutput()
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("curl %s %s: %s, want %q", tc.mode, tc.url, out, tc.want)
			}
		})
	}
}

// TestFwdListen runs -R over each network: the node listens, and each
// connection it accepts reaches the client with its originator.
func TestFwdListen(t *testing.T) {
	for _, network := range fwdNetworks {
		t.Run(string(network), func(t *testing.T) {
			e := newEnv(t, nil)
			key, peer := clientPeer(t, "alice", ScopeConnect, ScopeRemoteForward)
			e.setPeers(peer)
			c := e.newFwdClient(key, network)
			l, err := c.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			if port == 0 {
				t.Fatal("no bound port")
			}
			for i := range 3 {
				out, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					t.Fatal(err)
				}
				in, err := l.Accept()
				if err != nil {
					t.Fatal(err)
				}
				if got, want := in.RemoteAddr().String(), out.LocalAddr().String(); got != want {
					t.Errorf("originator %s, want %s", got, want)
				}
				go func() {
					_, _ = io.Copy(in, in)
					_ = in.(interface{ CloseWrite() error }).CloseWrite()
				}()
				msg := fmt.Sprintf("hello %d", i)
				if got := roundTrip(t, out, msg); got != msg {
					t.Fatalf("echo through -R = %q", got)
				}
				_ = in.Close()
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept after Close: %v", err)
			}
			coretest.Eventually(t, 5*time.Second, "the node to close the listener", func() bool {
				conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					return true
				}
				_ = conn.Close()
				return false
			})
		})
	}
}

// TestFwdRefusals checks that every refusal reaches the client as the
// error the SSH path gives, with the reason and message it sends.
func TestFwdRefusals(t *testing.T) {
	closedAddr := coretest.RefusedAddr(t)
	for _, network := range fwdNetworks {
		t.Run(string(network), func(t *testing.T) {
			e := newEnv(t, nil)
			echo := echoServer(t)
			fwd, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward, ScopeRemoteForward)
			bare, bpeer := clientPeer(t, "bob", ScopeConnect)
			e.setPeers(peer, bpeer)
			e.setPolicy(Policy{Forward: mustRules(t, "deny private.example.test", "allow self", "allow 10.0.0.0/8")})
			alice := e.newFwdClient(fwd, network)
			bob := e.newFwdClient(bare, network)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for _, tc := range []struct {
				name   string
				c      *FwdClient
				addr   string
				is     error
				reason xssh.RejectionReason
				msg    string
			}{
				{"policy", alice, "private.example.test:80", os.ErrPermission, xssh.Prohibited, "forwarding denied"},
				{"not in the rules", alice, "192.0.2.1:80", os.ErrPermission, xssh.Prohibited, "forwarding denied"},
				{"no scope", bob, echo.String(), os.ErrPermission, xssh.Prohibited, "forwarding not permitted"},
				{"reserved", alice, "alknet-call:1", os.ErrPermission, xssh.Prohibited, "reserved target"},
				{"refused", alice, closedAddr, syscall.ECONNREFUSED, xssh.ConnectionFailed, msgRefused},
				{"no such host", alice, "nowhere.invalid:80", syscall.EHOSTUNREACH, xssh.ConnectionFailed, msgHostUnreachable},
				{"port 0", alice, "127.0.0.1:0", nil, xssh.ConnectionFailed, "port 0"},
			} {
				for _, early := range []bool{false, true} {
					t.Run(fmt.Sprintf("%s early=%v", tc.name, early), func(t *testing.T) {
						err := refusedDial(ctx, tc.c, tc.addr, early)
						if err == nil {
							t.Fatal("dial succeeded")
						}
						if tc.is != nil && !errors.Is(err, tc.is) {
							t.Errorf("error %v does not match %v", err, tc.is)
						}
						oe, ok := errors.AsType[*xssh.OpenChannelError](err)
						if !ok || oe.Reason != tc.reason || oe.Message != tc.msg {
							t.Errorf("error %v, want reason %v message %q", err, tc.reason, tc.msg)
						}
					})
				}
			}
			for _, tc := range []struct {
				name, addr string
				c          *FwdClient
			}{
				{"bind denied", "0.0.0.0:0", alice},
				{"no remote scope", "127.0.0.1:0", bob},
			} {
				t.Run(tc.name, func(t *testing.T) {
					l, err := tc.c.Listen("tcp", tc.addr)
					if err == nil {
						_ = l.Close()
						t.Fatal("listen succeeded")
					}
					if !errors.Is(err, os.ErrPermission) {
						t.Errorf("error %v does not match os.ErrPermission", err)
					}
				})
			}
			if alice.Err() != nil || bob.Err() != nil {
				t.Errorf("a refusal ended a client: %v, %v", alice.Err(), bob.Err())
			}
			// The destination is never logged.
			if lines := e.logs.lines("private.example.test"); len(lines) > 0 {
				t.Errorf("destination logged: %q", lines)
			}
		})
	}
}

// TestFwdRefusesPeers checks that anonymous peers, unknown keys and
// identities without ssh:connect cannot forward at all.
func TestFwdRefusesPeers(t *testing.T) {
	e := newEnv(t, nil)
	echo := echoServer(t)
	noConnect, peer := clientPeer(t, "carol", ScopeForward)
	e.setPeers(peer)
	e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
	unknown := coretest.NewKey(t)
	for _, tc := range []struct {
		name    string
		key     ed25519.PrivateKey
		network core.Network
	}{
		{"no ssh:connect quic", noConnect, core.NetworkQUIC},
		{"unknown key quic", unknown, core.NetworkQUIC},
		{"no ssh:connect tcp", noConnect, core.NetworkTCP},
		{"unknown key tcp", unknown, core.NetworkTCP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := e.dialFwd(tc.key, tc.network)
			if err != nil {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("dial: %v, want ErrRefused", err)
				}
				return
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := c.DialContext(ctx, "tcp", echo.String())
			if err == nil {
				_ = conn.Close()
				t.Fatal("forward succeeded")
			}
			if !errors.Is(err, ErrRefused) {
				t.Errorf("error %v, want ErrRefused", err)
			}
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("client did not end on the refusal")
			}
		})
	}
	// Anonymous: a raw connection gets closed with CodeForbidden.
	conn := e.node.Dial(t, core.NetworkQUIC, nil, FwdALPN)
	select {
	case <-conn.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("anonymous connection not closed")
	}
	if code, ok := closeCode(nil, conn); !ok || code != core.CodeForbidden {
		t.Errorf("anonymous close: code %v %v, want forbidden", code, ok)
	}
}

// TestFwdBadHeaders sends broken headers on raw streams: each gets a
// malformed-request reply or a closed stream, never a panic or a hang.
func TestFwdBadHeaders(t *testing.T) {
	for _, network := range fwdNetworks {
		t.Run(string(network), func(t *testing.T) {
			e := newEnv(t, nil)
			key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward)
			e.setPeers(peer)
			for _, tc := range []struct {
				name string
				hdr  []byte
			}{
				{"version", []byte{9, fwdConnect, 0, 0, 80}},
				{"op", []byte{fwdVersion, 77}},
				{"node-only op", []byte{fwdVersion, fwdForwarded, 0, 0, 0, 1, 0, 0, 80}},
				{"short host", append([]byte{fwdVersion, fwdConnect, 200}, "abc"...)},
				{"short ticket", []byte{fwdVersion, fwdClaim, 1, 2, 3}},
				{"empty", nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					conn := e.node.Dial(t, network, key, FwdALPN)
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					st, err := conn.OpenStream(ctx)
					if err != nil {
						t.Fatal(err)
					}
					_ = st.SetDeadline(time.Now().Add(15 * time.Second))
					if _, err := st.Write(tc.hdr); err != nil {
						t.Fatal(err)
					}
					_ = st.CloseWrite()
					got, _ := io.ReadAll(st)
					want := []byte{byte(xssh.ConnectionFailed), detailMalformed}
					if !bytes.Equal(got, want) {
						t.Errorf("reply %v, want %v", got, want)
					}
				})
			}
		})
	}
}

// TestFwdNotOffered checks that DialFwd names a node without alknet/fwd,
// the case where the CLI falls back to SSH channels.
func TestFwdNotOffered(t *testing.T) {
	e := newEnv(t, nil)
	sshOnly := coretest.Start(t, core.Config{Key: e.node.Key, Identities: e.live}, onlyALPN{e.srv, ALPN})
	key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(peer)
	for _, network := range fwdNetworks {
		t.Run(string(network), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := DialFwd(ctx, FwdConfig{Dialer: &core.Dialer{Key: key, Network: network}, Addr: sshOnly.Addr})
			if err == nil {
				_ = c.Close()
				t.Fatal("DialFwd succeeded against a node without alknet/fwd")
			}
			if !errors.Is(err, ErrFwdNotOffered) {
				t.Fatalf("error %v, want ErrFwdNotOffered", err)
			}
		})
	}
}

// onlyALPN serves h on one ALPN, as a node without alknet/fwd does.
type onlyALPN struct {
	h    core.Handler
	alpn string
}

func (o onlyALPN) ALPNs() []string { return []string{o.alpn} }
func (o onlyALPN) Serve(ctx context.Context, c core.Conn) error {
	return o.h.Serve(ctx, c)
}

// TestFwdTickets checks that only the identity that listened can claim a
// parked connection, once, and that an unclaimed one is closed.
func TestFwdTickets(t *testing.T) {
	var tk fwdTickets
	a, b := net.Pipe()
	defer b.Close()
	ticket, ok := tk.park("alice", a, time.Hour)
	if !ok {
		t.Fatal("park refused")
	}
	if _, ok := tk.take("mallory", ticket); ok {
		t.Fatal("another identity claimed the ticket")
	}
	if c, ok := tk.take("alice", ticket); !ok || c != a {
		t.Fatal("owner could not claim the ticket")
	}
	if _, ok := tk.take("alice", ticket); ok {
		t.Fatal("ticket claimed twice")
	}
	_ = a.Close()

	c, d := net.Pipe()
	defer d.Close()
	if _, ok := tk.park("alice", c, 10*time.Millisecond); !ok {
		t.Fatal("park refused")
	}
	_ = d.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := d.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("unclaimed connection: read %v, want EOF", err)
	}
	for range fwdMaxPending {
		x, y := net.Pipe()
		defer x.Close()
		defer y.Close()
		if _, ok := tk.park("bob", x, time.Hour); !ok {
			t.Fatal("park refused under the limit")
		}
	}
	x, y := net.Pipe()
	defer x.Close()
	defer y.Close()
	if _, ok := tk.park("bob", x, time.Hour); ok {
		t.Fatal("park over the limit accepted")
	}
	tk.mu.Lock()
	for _, p := range tk.pending {
		p.timer.Stop()
	}
	tk.mu.Unlock()
}

// FuzzFwdRequest decodes arbitrary headers: no panic, and whatever
// decodes encodes back to the same bytes.
func FuzzFwdRequest(f *testing.F) {
	for _, r := range []fwdRequest{
		{op: fwdConnect, host: "db.internal", port: 5432},
		{op: fwdListen, host: "", port: 0},
		{op: fwdForwarded, id: 7, host: "192.0.2.1", port: 40000},
		{op: fwdClaim, ticket: [fwdTicketLen]byte{1, 2, 3}},
	} {
		b, err := appendRequest(nil, r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{fwdVersion, fwdConnect, 255})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := decodeRequest(b)
		if err != nil {
			return
		}
		back, err := appendRequest(nil, req)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", req, err)
		}
		if !bytes.Equal(back, b) {
			t.Fatalf("round trip %x -> %+v -> %x", b, req, back)
		}
	})
}

// refusedDial dials addr and returns the node's refusal: DialContext's
// error, or, early, the error of the first Read after bytes were sent.
func refusedDial(ctx context.Context, c *FwdClient, addr string, early bool) error {
	if !early {
		conn, err := c.DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
		}
		return err
	}
	conn, err := c.DialEarly(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_, _ = conn.Write([]byte("sent before the answer"))
	_, err = conn.Read(make([]byte, 1))
	return err
}

// TestFwdTCPResumes: over TCP+TLS, where every forwarded connection is a
// TLS connection of its own, each forward resumes the session of DialFwd's
// first connection (no certificates, no signatures) when the Dialer keeps
// sessions.
func TestFwdTCPResumes(t *testing.T) {
	e := newEnv(t, nil)
	key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(peer)
	e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := DialFwd(ctx, FwdConfig{
		Dialer:           &core.Dialer{Key: key, Network: core.NetworkTCP, Sessions: core.NewSessionCache("", 0, nil)},
		Addr:             e.node.Addr,
		HandshakeTimeout: 10 * time.Second,
		Logger:           e.srv.cfg.Logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = conn.Write([]byte("hi"))
			_ = conn.Close()
		}
	}()
	for i := range 3 {
		st, own, hdr, err := c.openConnect(ctx, "tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if rep, _, _, err := c.exchange(ctx, st, own, hdr, false); err != nil || rep != replyOK {
			t.Fatalf("forward %d: %v, %v", i, rep, err)
		}
		if b, err := io.ReadAll(st); err != nil || string(b) != "hi" {
			t.Fatalf("forward %d read %q, %v", i, b, err)
		}
		if !core.Resumed(own) {
			t.Errorf("forward %d made a full handshake", i)
		}
		_ = st.Close()
	}
}
