package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"image/png"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// startHead runs a head node with the dashboard on: alknet/call and http
// over one registry holding the built-ins and a peer set, with a worker
// "builder" attached. The admin and user tokens are those of start.
func startHead(t *testing.T) *fixture {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	key, workerKey := coretest.NewKey(t), coretest.NewKey(t)
	nodeID := coretest.NodeID(key)
	f := &fixture{reg: testRegistry(t, nil)}
	peers := call.NewPeers(call.First, quiet)
	if err := call.RegisterBuiltins(f.reg, call.Info{NodeID: nodeID.String()}, peers); err != nil {
		t.Fatal(err)
	}
	admin, adminEntry := newTokenEntry(t, "ops", AdminScope)
	user, userEntry := newTokenEntry(t, "user")
	f.admin, f.user = admin, user
	dir, err := core.NewDirectory(
		[]core.PeerEntry{{ID: "builder", NodeIDs: []core.NodeID{coretest.NodeID(workerKey)}, Scopes: []string{call.WorkerScope}}},
		[]core.TokenEntry{adminEntry, userEntry})
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	f.srv, err = New(Config{Registry: f.reg, Peers: peers, Identities: live, NodeID: nodeID.String(), Dashboard: true,
		ALPNs: []string{call.ALPN, ALPNH3, ALPNH2, ALPNHTTP1, ALPN}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.srv.Close() })
	calls, err := call.New(call.Config{Registry: f.reg, Identities: live, Peers: peers, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	f.node = coretest.Start(t, core.Config{Key: key, Identities: live, Logger: quiet}, calls, f.srv)

	wreg := call.NewRegistry()
	if err := call.RegisterBuiltins(wreg, call.Info{}, nil); err != nil {
		t.Fatal(err)
	}
	if err := call.Register(wreg, call.Spec{Name: "build/run", Type: call.Mutation},
		func(context.Context, *call.Request, none) (none, error) { return none{}, nil }); err != nil {
		t.Fatal(err)
	}
	headDir, _ := core.NewDirectory([]core.PeerEntry{{ID: "head", NodeIDs: []core.NodeID{nodeID}}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		_ = call.Join(ctx, f.node.Addr, call.Options{Dialer: &core.Dialer{Key: workerKey, Network: core.NetworkQUIC},
			Registry: wreg, Identities: core.NewLiveDirectory(headDir, nil), Logger: quiet})
	}()
	t.Cleanup(func() {
		cancel()
		<-joined
	})
	return f
}

// dashboardWith fetches the dashboard with the admin token until it
// contains want (the worker attaches in the background).
func dashboardWith(t *testing.T, f *fixture, c *http.Client, want string) (http.Header, string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, hdr, body := do(t, c, "GET", f.url("/"), f.admin, "")
		if st != http.StatusOK {
			t.Fatalf("dashboard: %d %s", st, body)
		}
		if strings.Contains(body, want) {
			return hdr, body
		}
		if time.Now().After(deadline) {
			t.Fatalf("dashboard never showed %q:\n%s", want, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDashboardOffByDefault(t *testing.T) {
	f := start(t, Limits{})
	c := f.client(t, true)
	for _, method := range []string{"GET", "POST"} {
		if st, _, body := do(t, c, method, f.url("/"), f.admin, ""); st != http.StatusNotFound {
			t.Errorf("%s / with the dashboard off: %d %s", method, st, body)
		}
	}
}

func TestDashboardAccess(t *testing.T) {
	f := startHead(t)
	// The handler directly, as a client from another machine: loopback
	// grants nothing there.
	for _, tc := range []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"token without admin", f.user, http.StatusForbidden},
		{"admin token", f.admin, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = "192.0.2.7:40000"
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			rec := httptest.NewRecorder()
			f.srv.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("got %d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if tc.want == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Over a real connection the client is on loopback, which is not
	// enough by default.
	if st, _, body := do(t, f.client(t, false), "GET", f.url("/"), "", ""); st != http.StatusUnauthorized {
		t.Fatalf("loopback without a token: %d %s, want 401", st, body)
	}
}

// TestAdminPagesAccess asks /metrics and the dashboard over real TCP+TLS
// connections from loopback: without credentials they answer 401 unless
// TrustLoopback is set, and never to a connection Forwarded reports (here,
// every connection of one client stands for those the node's ssh
// forwarding opens) nor to a request a reverse proxy relayed (it carries
// X-Forwarded-For); tokens with the admin scope, or the metrics scope for
// /metrics, get in either way.
func TestAdminPagesAccess(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	admin, adminEntry := newTokenEntry(t, "ops", AdminScope)
	metrics, metricsEntry := newTokenEntry(t, "prometheus", MetricsScope)
	user, userEntry := newTokenEntry(t, "user")
	dir, err := core.NewDirectory(nil, []core.TokenEntry{adminEntry, metricsEntry, userEntry})
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)

	// forwarded holds the local addresses of the "tunnelled" client's
	// connections, as ssh.Server.Forwarded holds its dialled ones.
	var forwarded sync.Map
	start := func(t *testing.T, trust bool) *fixture {
		f := &fixture{reg: testRegistry(t, nil)}
		f.srv, err = New(Config{Registry: f.reg, Identities: live, NodeID: "test", Dashboard: true, Logger: quiet,
			TrustLoopback: trust,
			Forwarded: func(remote netip.AddrPort) bool {
				_, ok := forwarded.Load(remote)
				return ok
			}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.srv.Close() })
		f.node = coretest.Start(t, core.Config{Identities: live, Logger: quiet}, f.srv)
		return f
	}
	tunnelled := func(t *testing.T) *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				forwarded.Store(conn.LocalAddr().(*net.TCPAddr).AddrPort(), true)
			}
			return conn, err
		}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}

	for _, trust := range []bool{false, true} {
		f := start(t, trust)
		proxied := f.client(t, true)
		proxied.Transport = proxyHeader{proxied.Transport}
		clients := map[string]*http.Client{"loopback": f.client(t, true), "tunnelled": tunnelled(t), "proxied": proxied}
		for _, tc := range []struct {
			path, client, token string
			want, wantTrusted   int // wantTrusted: with TrustLoopback
		}{
			{"/metrics", "loopback", "", 401, 200},
			{"/metrics", "tunnelled", "", 401, 401},
			{"/metrics", "loopback", user, 403, 200},
			{"/metrics", "tunnelled", user, 403, 403},
			{"/metrics", "loopback", metrics, 200, 200},
			{"/metrics", "tunnelled", admin, 200, 200},
			{"/", "loopback", "", 401, 200},
			{"/", "tunnelled", "", 401, 401},
			{"/", "loopback", metrics, 403, 200},
			{"/", "tunnelled", metrics, 403, 403},
			{"/", "loopback", admin, 200, 200},
			{"/", "tunnelled", admin, 200, 200},
			{"/metrics", "proxied", "", 401, 401},
			{"/", "proxied", "", 401, 401},
			{"/metrics", "proxied", metrics, 200, 200},
		} {
			want := tc.want
			if trust {
				want = tc.wantTrusted
			}
			name := fmt.Sprintf("trust=%v %s %s token=%v", trust, tc.path, tc.client, tc.token != "")
			st, hdr, body := do(t, clients[tc.client], "GET", f.url(tc.path), tc.token, "")
			if st != want {
				t.Errorf("%s: %d %.80s, want %d", name, st, body, want)
			}
			if st == http.StatusUnauthorized && hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without WWW-Authenticate", name)
			}
		}
	}
}

// proxyHeader adds the header a reverse proxy on the node's machine adds
// to each request it relays.
type proxyHeader struct{ rt http.RoundTripper }

func (p proxyHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	return p.rt.RoundTrip(r)
}

func TestDashboardContent(t *testing.T) {
	f := startHead(t)
	c := f.client(t, true)
	const secret = "alk_not-a-real-token-but-secret"
	if st, _, _ := do(t, c, "POST", f.url("/v1/ops/demo/echo"), secret, `{"text":"x"}`); st != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", st)
	}
	if st, _, _ := do(t, c, "GET", f.url("/v1/ops/<b>bold</b>"), "", "", "Authorization", "Basic "+secret); st != http.StatusUnauthorized {
		t.Fatalf("malformed header: %d", st)
	}
	do(t, c, "POST", f.url("/v1/ops/demo/echo"), "", `{"text":"x"}`)
	do(t, c, "POST", f.url("/v1/ops/demo/boom"), "", `{}`)

	hdr, body := dashboardWith(t, f, c, "build/run")
	if ct := hdr.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	for _, want := range []string{
		f.node.ID.String(),
		"viewing as ops",
		"<code>alknet/call</code>", "<code>h3</code>", "<code>alknet/http</code>",
		"<code>builder</code>",
		"2 since start",
		"POST /v1/ops/demo/echo", "token not accepted",
		"GET /v1/ops/&lt;b&gt;bold&lt;/b&gt;", "malformed Authorization header",
		"127.0.0.1", "<code>h2</code>",
		"<code>demo/boom</code>",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	for _, bad := range []string{"not-a-real-token", "<b>bold", "<script"} {
		if strings.Contains(body, bad) {
			t.Errorf("dashboard contains %q", bad)
		}
	}
}

func TestRejectLogKeepsTheNewest(t *testing.T) {
	var l rejectLog
	for i := range maxRejects + 5 {
		l.add(authReject{Request: fmt.Sprint(i)})
	}
	got := l.recent()
	if len(got) != maxRejects || got[0].Request != fmt.Sprint(maxRejects+4) || got[maxRejects-1].Request != "5" {
		t.Fatalf("kept %d, newest %q, oldest %q", len(got), got[0].Request, got[len(got)-1].Request)
	}
}

// TestDashboardInChromium renders the page in headless Chromium and checks
// the screenshot and the DOM. Chromium can neither send a bearer token nor
// accept the node's Ed25519 certificate, so it browses through a plain
// HTTP reverse proxy that adds the admin token.
func TestDashboardInChromium(t *testing.T) {
	chromium := coretest.RequireTool(t, "chromium")
	f := startHead(t)
	c := f.client(t, true)
	do(t, c, "GET", f.url("/v1/ops/demo/echo"), "alk_bad", "")
	dashboardWith(t, f, c, "build/run")
	node, _ := url.Parse(f.url("/"))
	proxy := httptest.NewServer(&httputil.ReverseProxy{Transport: c.Transport, Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(node)
		r.Out.Header.Set("Authorization", "Bearer "+f.admin)
	}})
	t.Cleanup(proxy.Close)

	// browse runs chromium on the dashboard and returns its output and log.
	browse := func(args ...string) ([]byte, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, chromium, append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
			"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--ignore-certificate-errors", "--window-size=1280,900"}, append(args, proxy.URL+"/")...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.WaitDelay = 5 * time.Second // helper processes holding stdout
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
		}
		return out, stderr.String()
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	_, log := browse("--screenshot=" + shot)
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("%v; chromium said:\n%s", err, log)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X != 1280 || sz.Y != 900 {
		t.Errorf("screenshot is %v, want 1280x900", sz)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(b))
	out, log := browse("--dump-dom")
	dom := string(out)
	for _, want := range []string{f.node.ID.String(), "build/run", "viewing as ops"} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q:\n%s\nchromium said:\n%s", want, dom, log)
		}
	}
}

// newTokenEntry makes a token named name with scopes: its secret and its
// directory entry.
func newTokenEntry(t *testing.T, name string, scopes ...string) (string, core.TokenEntry) {
	t.Helper()
	secret, hash, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return secret, core.TokenEntry{Name: name, Hash: hash, Scopes: scopes}
}

// TestDashboardNodeStatus: with Config.Status, every ALPN shows its live
// connections, the other services' rejects join this server's, and the
// last reload shows with its result.
func TestDashboardNodeStatus(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		status NodeStatus
		want   []string
		absent []string
	}{
		{
			name: "counts, rejects, failed reload",
			status: NodeStatus{
				Conns: map[string]int{call.ALPN: 3, ALPNH2: 1},
				Rejects: []NodeReject{
					{At: at, ALPN: "alknet/ssh", RemoteIP: "203.0.113.5"},
					{At: at, ALPN: ALPNH2, RemoteIP: "203.0.113.6"}, // this server's own: not listed twice
				},
				RejectsTotal: 7,
				Reload:       &NodeReload{At: at, Trigger: "control", Error: "alknet.toml:3:1: bad"},
			},
			want: []string{
				"<tr><td><code>alknet/call</code></td><td class=\"num\">3</td></tr>",
				"<tr><td><code>h2</code></td><td class=\"num\">1</td></tr>",
				"<tr><td><code>alknet/http</code></td><td class=\"num\">0</td></tr>",
				"Connections open now",
				"203.0.113.5", "<code>alknet/ssh</code>", "7 since start",
				"2030-01-02 03:04:05 UTC (control)", "failed: alknet.toml:3:1: bad",
			},
			absent: []string{"n/a", "203.0.113.6"},
		},
		{
			name:   "no reload yet",
			status: NodeStatus{},
			want:   []string{"not reloaded since the start", "<td class=\"num\">0</td>"},
			absent: []string{"n/a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(Config{Registry: call.NewRegistry(), Dashboard: true, NodeID: "n",
				ALPNs: []string{call.ALPN, ALPNH2, ALPN}, Status: func() NodeStatus { return tt.status },
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = srv.Close() })
			rec := httptest.NewRecorder()
			srv.serveDashboard(rec, httptest.NewRequest("GET", "/", nil))
			body := rec.Body.String()
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("dashboard lacks %q", w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(body, a) {
					t.Errorf("dashboard contains %q", a)
				}
			}
		})
	}
}
