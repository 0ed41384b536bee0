package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/ssh/socks5"
)

// webServer serves a fixed text on 127.0.0.1 until the test ends.
func webServer(t *testing.T) (*httptest.Server, uint16) {
	t.Helper()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from web")
	}))
	t.Cleanup(web.Close)
	return web, netip.MustParseAddrPort(web.Listener.Addr().String()).Port()
}

// serve runs serve in the background until the test ends, checking it
// stopped because the test ended.
func serve(t *testing.T, serve func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("serve stopped with %v", err)
		}
	})
}

// TestSOCKSThroughNode runs the SOCKS5 server on a client: each CONNECT is
// a direct-tcpip channel, names are resolved by the node and its policy
// decides. (The reply codes for refusals are the socks5 package's tests
// and the CLI's.)
func TestSOCKSThroughNode(t *testing.T) {
	e := newEnv(t, nil)
	web, port := webServer(t)
	key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(peer)
	e.setPolicy(Policy{Forward: mustRules(t, "allow web.example.test", "allow 127.0.0.1")})
	c := e.newClient(key, true)
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

	curl := coretest.RequireTool(t, "curl")
	for _, tc := range []struct{ mode, url string }{
		// The name only the node's resolver knows: no local lookup.
		{"--socks5-hostname", fmt.Sprintf("http://web.example.test:%d/", port)},
		{"--socks5", web.URL + "/"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, curl, "-sS", "--noproxy", "", tc.mode, proxy, tc.url).CombinedOutput()
			if err != nil || string(out) != "hello from web" {
				t.Fatalf("curl %s %s: %v\n%s", tc.mode, tc.url, err, out)
			}
		})
	}
}

// TestForward runs a local forward (ssh -L) and a remote forward (ssh -R)
// with Forward.
func TestForward(t *testing.T) {
	e := newEnv(t, nil)
	web, _ := webServer(t)
	target := web.Listener.Addr().String()
	key, peer := clientPeer(t, "alice", ScopeConnect, ScopeForward, ScopeRemoteForward)
	e.setPeers(peer)
	e.setPolicy(Policy{Forward: mustRules(t, "allow 127.0.0.1")})
	c := e.newClient(key, true)

	local, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, func(ctx context.Context) error { return Forward(ctx, local, c.DialContext, "tcp", target, nil) })
	if got := httpGet(t, "http://"+local.Addr().String()+"/"); got != "hello from web" {
		t.Errorf("through -L: %q", got)
	}

	remote, err := c.Listen("tcp", "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	serve(t, func(ctx context.Context) error { return Forward(ctx, remote, d.DialContext, "tcp", target, nil) })
	port := remote.Addr().(*net.TCPAddr).Port
	if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "hello from web" {
		t.Errorf("through -R: %q", got)
	}
}
