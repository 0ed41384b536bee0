package socks5

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alkdev/alknet/core/coretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start serves cfg on a loopback listener until the test ends.
func start(t *testing.T, cfg Config) string {
	t.Helper()
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return ln.Addr().String()
}

// echoServer echoes connections on loopback until the test ends.
func echoServer(t *testing.T, network string) string {
	t.Helper()
	host := "127.0.0.1:0"
	if network == "tcp6" {
		host = "[::1]:0"
	}
	ln, err := net.Listen(network, host)
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String()
}

// encodeRequest is a client's request for addr: an IP literal as
// IPv4/IPv6, anything else as a domain name.
func encodeRequest(cmd byte, host string, port uint16) []byte {
	b := []byte{version5, cmd, 0}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Is4() {
			b = append(append(b, atypIPv4), a.AsSlice()...)
		} else {
			b = append(append(b, atypIPv6), a.AsSlice()...)
		}
	} else {
		b = append(append(b, atypDomain, byte(len(host))), host...)
	}
	return binary.BigEndian.AppendUint16(b, port)
}

// client is a raw SOCKS5 client connection.
type client struct {
	t *testing.T
	net.Conn
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &client{t, c}
}

func (c *client) send(b ...byte) {
	c.t.Helper()
	if _, err := c.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// expect reads len(want) bytes and compares.
func (c *client) expect(want ...byte) {
	c.t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		c.t.Fatalf("read %d bytes: %v (got % x)", len(want), err, got)
	}
	if !bytes.Equal(got, want) {
		c.t.Fatalf("got % x, want % x", got, want)
	}
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		c.t.Fatalf("expected the server to close; read % x, %v", b, err)
	}
}

// connect negotiates no-auth and sends a request, returning the reply code.
func (c *client) connect(cmd byte, host string, port uint16) Reply {
	c.t.Helper()
	c.send(version5, 1, methodNoAuth)
	c.expect(version5, methodNoAuth)
	return c.request(cmd, host, port)
}

// request sends a request and reads the reply, returning its code.
func (c *client) request(cmd byte, host string, port uint16) Reply {
	c.t.Helper()
	c.send(encodeRequest(cmd, host, port)...)
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		c.t.Fatalf("reply: %v", err)
	}
	n := 4
	if hdr[3] == atypIPv6 {
		n = 16
	}
	rest := make([]byte, n+2)
	if _, err := io.ReadFull(c, rest); err != nil {
		c.t.Fatalf("reply address: %v", err)
	}
	if hdr[0] != version5 || hdr[2] != 0 {
		c.t.Fatalf("malformed reply % x", hdr)
	}
	return Reply(hdr[1])
}

// offerOnly offers one method the server does not take and checks the
// refusal.
func offerOnly(t *testing.T, addr string, method byte) {
	t.Helper()
	c := dial(t, addr)
	c.send(version5, 1, method)
	c.expect(version5, methodNone)
	c.expectClosed()
}

// echo checks that the connection now carries data both ways, including
// the half-close.
func (c *client) echo() {
	c.t.Helper()
	c.send([]byte("ping")...)
	_ = c.Conn.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ping" {
		c.t.Fatalf("echo: %q, %v", got, err)
	}
}

func TestConnect(t *testing.T) {
	addr := start(t, Config{})
	v4 := netip.MustParseAddrPort(echoServer(t, "tcp4"))
	for _, tc := range []struct{ name, host string }{
		{"ipv4", "127.0.0.1"},
		{"domain", "localhost"},
		{"ipv4-mapped ipv6", "::ffff:127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			if rep := c.connect(cmdConnect, tc.host, v4.Port()); rep != Succeeded {
				t.Fatalf("CONNECT %s: %v", tc.host, rep)
			}
			c.echo()
		})
	}
	t.Run("ipv6", func(t *testing.T) {
		v6 := netip.MustParseAddrPort(echoServer(t, "tcp6"))
		c := dial(t, addr)
		if rep := c.connect(cmdConnect, "::1", v6.Port()); rep != Succeeded {
			t.Fatalf("CONNECT [::1]: %v", rep)
		}
		c.echo()
	})
}

func TestDomainNamesReachDialUnresolved(t *testing.T) {
	got := make(chan string, 1)
	addr := start(t, Config{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		got <- network + " " + addr
		return nil, errors.New("no")
	}})
	c := dial(t, addr)
	if rep := c.connect(cmdConnect, "Web.Example.test", 443); rep != GeneralFailure {
		t.Fatalf("reply %v", rep)
	}
	if g := <-got; g != "tcp Web.Example.test:443" {
		t.Fatalf("Dial got %q", g)
	}
}

func TestRefusals(t *testing.T) {
	addr := start(t, Config{})
	t.Run("bind", func(t *testing.T) {
		if rep := dial(t, addr).connect(cmdBind, "127.0.0.1", 80); rep != CommandNotSupported {
			t.Fatalf("BIND: %v", rep)
		}
	})
	t.Run("udp associate", func(t *testing.T) {
		if rep := dial(t, addr).connect(cmdUDPAssociate, "0.0.0.0", 0); rep != CommandNotSupported {
			t.Fatalf("UDP ASSOCIATE: %v", rep)
		}
	})
	t.Run("unknown command", func(t *testing.T) {
		if rep := dial(t, addr).connect(0x09, "127.0.0.1", 80); rep != CommandNotSupported {
			t.Fatalf("command 9: %v", rep)
		}
	})
	t.Run("address type", func(t *testing.T) {
		c := dial(t, addr)
		c.send(version5, 1, methodNoAuth)
		c.expect(version5, methodNoAuth)
		c.send(version5, cmdConnect, 0, 0x05, 1, 2, 3, 4, 0, 80)
		c.expect(version5, byte(AddressTypeNotSupported), 0, atypIPv4, 0, 0, 0, 0, 0, 0)
		c.expectClosed()
	})
	t.Run("bad host name", func(t *testing.T) {
		if rep := dial(t, addr).connect(cmdConnect, "a b/c", 80); rep != HostUnreachable {
			t.Fatalf("bad name: %v", rep)
		}
	})
	t.Run("socks4", func(t *testing.T) {
		c := dial(t, addr)
		c.send(0x04, 0x01, 0, 80, 127, 0, 0, 1, 0)
		c.expectClosed()
	})
	t.Run("no acceptable method", func(t *testing.T) { offerOnly(t, addr, methodUserPwd) })
}

func TestReplyCodes(t *testing.T) {
	refused := netip.MustParseAddrPort(coretest.RefusedAddr(t))
	var d net.Dialer
	for _, tc := range []struct {
		name string
		err  error
		want Reply
	}{
		{"refused (real)", nil, ConnectionRefused},
		{"not allowed", fmt.Errorf("policy: %w", os.ErrPermission), NotAllowed},
		{"host unreachable", syscall.EHOSTUNREACH, HostUnreachable},
		{"no such host", &net.DNSError{Err: "no such host", IsNotFound: true}, HostUnreachable},
		{"timeout", context.DeadlineExceeded, HostUnreachable},
		{"network unreachable", &net.OpError{Op: "dial", Err: syscall.ENETUNREACH}, NetworkUnreachable},
		{"other", errors.New("boom"), GeneralFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := start(t, Config{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if tc.err == nil {
					return d.DialContext(ctx, network, addr)
				}
				return nil, tc.err
			}})
			c := dial(t, addr)
			if rep := c.connect(cmdConnect, "127.0.0.1", refused.Port()); rep != tc.want {
				t.Fatalf("reply %v, want %v", rep, tc.want)
			}
			c.expectClosed()
		})
	}
}

func TestUserPassword(t *testing.T) {
	echo := netip.MustParseAddrPort(echoServer(t, "tcp4"))
	addr := start(t, Config{User: "me", Password: "s3cret"})
	auth := func(c *client, user, pass string) {
		c.send(version5, 2, methodNoAuth, methodUserPwd)
		c.expect(version5, methodUserPwd)
		c.send(append(append(append([]byte{authVersion, byte(len(user))}, user...), byte(len(pass))), pass...)...)
	}
	t.Run("accepted", func(t *testing.T) {
		c := dial(t, addr)
		auth(c, "me", "s3cret")
		c.expect(authVersion, 0)
		if rep := c.request(cmdConnect, "127.0.0.1", echo.Port()); rep != Succeeded {
			t.Fatalf("CONNECT after auth: %v", rep)
		}
		c.echo()
	})
	for _, bad := range [][2]string{{"me", "wrong"}, {"you", "s3cret"}, {"", ""}} {
		t.Run("refused "+bad[0]+"/"+bad[1], func(t *testing.T) {
			c := dial(t, addr)
			auth(c, bad[0], bad[1])
			c.expect(authVersion, 1)
			c.expectClosed()
		})
	}
	t.Run("no-auth refused", func(t *testing.T) { offerOnly(t, addr, methodNoAuth) })
}

func TestHandshakeTimeout(t *testing.T) {
	addr := start(t, Config{HandshakeTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	c.send(version5) // and then nothing
	start := time.Now()
	c.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestNewChecksConfig(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Dial: (&net.Dialer{}).DialContext, User: "only"},
		{Dial: (&net.Dialer{}).DialContext, HandshakeTimeout: -1},
		{Dial: (&net.Dialer{}).DialContext, User: "u", Password: strings.Repeat("p", 256)},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestCurl drives stock curl through the server, with the name resolved by
// Dial (--socks5-hostname) and by curl (--socks5).
func TestCurl(t *testing.T) {
	curl := coretest.RequireTool(t, "curl")
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from web")
	}))
	defer web.Close()
	port := netip.MustParseAddrPort(web.Listener.Addr().String()).Port()
	addr := start(t, Config{User: "me", Password: "pw"})
	for _, mode := range []string{"--socks5-hostname", "--socks5"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, curl, "-sS", "--noproxy", "", mode, addr, "--proxy-user", "me:pw",
				fmt.Sprintf("http://localhost:%d/", port)).CombinedOutput()
			if err != nil || string(out) != "hello from web" {
				t.Fatalf("curl %s: %v\n%s", mode, err, out)
			}
		})
	}
}
