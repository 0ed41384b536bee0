//go:build unix

package http

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestH3Ngtcp2 speaks HTTP/3 to the node with ngtcp2's example client
// (Debian ngtcp2-client: ngtcp2, nghttp3 and GnuTLS, no quic-go), which
// accepts the self-signed Ed25519 node certificate without verifying it.
// The client prints the ALPN it negotiated and each stream's :status; the
// server's per-ALPN connection counter confirms the h3 connection.
func TestH3Ngtcp2(t *testing.T) {
	bin := coretest.RequireTool(t, "gtlsclient")
	f := start(t, Limits{})
	host, port, err := net.SplitHostPort(f.node.HostPort)
	if err != nil {
		t.Fatal(err)
	}
	reqs := []struct {
		path   string
		status int
		body   string
	}{
		{"/v1/ops/demo/echo?input=" + url.QueryEscape(`{"text":"over h3"}`), 200, `{"text":"over h3"}`},
		{"/v1/ops/demo/echo?input=" + url.QueryEscape(`{"text":1}`), 422, `"code":"INVALID_INPUT"`},
		{"/v1/ops/demo/secret?input=%7B%7D", 401, `"code":"FORBIDDEN"`},
		{"/healthz", 200, "ok"},
	}
	dir := t.TempDir()
	args := []string{"--exit-on-all-streams-close", "--no-quic-dump", "--no-http-dump", "--timeout=10s", "--download=" + dir, host, port}
	for _, r := range reqs {
		args = append(args, f.url(r.path))
	}
	out := runBounded(t, 30*time.Second, nil, bin, args...)
	if !strings.Contains(out, "Negotiated ALPN is h3\n") {
		t.Fatalf("gtlsclient did not negotiate h3:\n%s", out)
	}
	// The client opens one bidirectional stream per URI, in order: 0, 4, 8…
	status := map[int]int{}
	for _, m := range regexp.MustCompile(`http: stream 0x([0-9a-f]+) \[:status: (\d+)\]`).FindAllStringSubmatch(out, -1) {
		id, _ := strconv.ParseInt(m[1], 16, 64)
		status[int(id)], _ = strconv.Atoi(m[2])
	}
	for i, r := range reqs {
		// --download names each body after the last segment of its URI.
		body, err := os.ReadFile(filepath.Join(dir, r.path[strings.LastIndexByte(r.path, '/')+1:]))
		if st := status[4*i]; st != r.status || err != nil || !strings.Contains(string(body), r.body) {
			t.Errorf("GET %s over h3: %d %q (%v), want %d containing %q", r.path, st, body, err, r.status, r.body)
		}
	}
	if n := connsByALPN(t, f)["h3"]; n != 1 {
		t.Errorf("server counted %d h3 connections, want 1", n)
	}
}

// TestH3Chromium loads a REST query in headless Chromium over HTTP/3.
// Chromium does not offer Ed25519 TLS signatures (the node certificate
// fails with ERR_QUIC_PROTOCOL_ERROR), so the node serves an ECDSA web
// certificate, pinned by its SPKI hash. --origin-to-force-quic-on makes
// Chromium go straight to QUIC for the origin, without Alt-Svc or a TCP
// attempt; the server's per-ALPN connection counters then show that every
// connection but our own /metrics read was h3.
func TestH3Chromium(t *testing.T) {
	bin := coretest.RequireTool(t, "chromium")
	wc, pin := webCert(t)
	discard := slog.New(slog.DiscardHandler)
	f := &fixture{}
	var err error
	// No tokens here: the /metrics read relies on loopback trust.
	f.srv, err = New(Config{Registry: testRegistry(t, nil), Identities: core.NewLiveDirectory(nil, nil), NodeID: "test", TrustLoopback: true, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.srv.Close() })
	f.node = coretest.Start(t, core.Config{WebCert: wc, StandardALPNs: []string{ALPNH3, ALPNH2, ALPNHTTP1}, Logger: discard}, f.srv)

	// Chromium's wrapper and helpers write to $HOME; keep that in the test.
	home := t.TempDir()
	out := runBounded(t, 60*time.Second, []string{"HOME=" + home}, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions", "--user-data-dir="+filepath.Join(home, "profile"),
		"--origin-to-force-quic-on="+f.node.HostPort, "--ignore-certificate-errors-spki-list="+pin,
		"--dump-dom", f.url("/v1/ops/demo/echo?input="+url.QueryEscape(`{"text":"from chromium"}`)))
	// Chromium shows a JSON response as text in a <pre>.
	if !strings.Contains(out, `<pre>{"text":"from chromium"}</pre>`) {
		t.Fatalf("chromium --dump-dom:\n%s", out)
	}
	conns := connsByALPN(t, f)
	if conns["h3"] < 1 || conns["h2"]+conns["http/1.1"] != 1 {
		t.Errorf("connections by ALPN %v, want h3 only besides the one h2 /metrics read", conns)
	}
}

// runBounded runs a stock client in its own process group with extra
// environment variables, kills the whole group once timeout passes, and
// returns its stdout and stderr together. Any failure is fatal.
func runBounded(t *testing.T, timeout time.Duration, env []string, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(bin), args, err, out)
	}
	return string(out)
}

// connsByALPN reads alknet_http_connections_total from /metrics (with the
// admin token, if f has one) over h2 and returns it by ALPN.
func connsByALPN(t *testing.T, f *fixture) map[string]int {
	t.Helper()
	st, _, body := do(t, f.client(t, true), "GET", f.url("/metrics"), f.admin, "")
	if st != 200 {
		t.Fatalf("GET /metrics: %d %s", st, body)
	}
	conns := map[string]int{}
	re := regexp.MustCompile(`^alknet_http_connections_total\{alpn="([^"]+)"\} (\d+)$`)
	for sc := bufio.NewScanner(strings.NewReader(body)); sc.Scan(); {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			conns[m[1]], _ = strconv.Atoi(m[2])
		}
	}
	return conns
}

// webCert returns a web certificate for 127.0.0.1 over a fresh ECDSA P-256
// key, and the base64 SHA-256 of its SubjectPublicKeyInfo for Chromium's
// --ignore-certificate-errors-spki-list.
func webCert(t *testing.T) (*core.WebCert, string) {
	t.Helper()
	certFile, keyFile, key := coretest.WebCertFiles(t, "127.0.0.1")
	wc, err := core.WebCertFromFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	spki, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(spki)
	return wc, base64.StdEncoding.EncodeToString(sum[:])
}
