package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core/coretest"
)

// hostPort is the host:port part of a test node's pinned address.
func (n *testNode) hostPort() string { return n.addr[strings.IndexByte(n.addr, '@')+1:] }

// webPin returns the web certificate pin `alknet id` prints for dir.
func webPin(t *testing.T, dir string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(run(t, "", "id", "--data-dir", dir)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], "sha256//") {
		t.Fatalf("alknet id printed no web certificate pin:\n%s", strings.Join(lines, "\n"))
	}
	return lines[2]
}

// TestWebCertPin: a node with no config presents a self-signed ECDSA
// certificate on the standard ALPNs (its node certificate, Ed25519, stays on
// alknet's own), for localhost and the bound address, whose pin `alknet id`
// prints before the node ever ran; curl holding that pin gets in, curl
// holding another is refused.
func TestWebCertPin(t *testing.T) {
	curl := coretest.RequireTool(t, "curl")
	dir := t.TempDir()
	run(t, "", "init", "--data-dir", dir)
	pin := webPin(t, dir)
	n := startNodeIn(t, dir, "")
	n.waitLog(t, regexp.QuoteMeta(`msg="web certificate: self-signed"`)+`.* pin="`+regexp.QuoteMeta(pin)+`"`)

	for _, tc := range []struct {
		name, pin string
		exit      int
	}{
		{"the printed pin", pin, 0},
		{"another pin", "sha256//" + strings.Repeat("A", 43) + "=", 90}, // CURLE_SSL_PINNEDPUBKEYNOTMATCH
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, curl, "-sSk", "--noproxy", "*", "--pinnedpubkey", tc.pin, "https://"+n.hostPort()+"/healthz").CombinedOutput()
			exit := 0
			if ee, ok := err.(*exec.ExitError); ok {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if exit != tc.exit || tc.exit == 0 && strings.TrimSpace(string(out)) != "ok" {
				t.Errorf("curl --pinnedpubkey: exit %d, %q; want exit %d", exit, out, tc.exit)
			}
		})
	}

	for _, tc := range []struct {
		alpn  string
		ecdsa bool
	}{{"h2", true}, {"http/1.1", true}, {"dot", true}, {"alknet/call", false}} {
		t.Run("certificate on "+tc.alpn, func(t *testing.T) {
			conn, err := tls.Dial("tcp", n.hostPort(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{tc.alpn}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			leaf := conn.ConnectionState().PeerCertificates[0]
			if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); ok != tc.ecdsa {
				t.Fatalf("%s: certificate key %T, want ECDSA %v", tc.alpn, leaf.PublicKey, tc.ecdsa)
			}
			if !tc.ecdsa {
				return
			}
			if got, _ := node.SPKIPin(leaf.PublicKey); got != pin {
				t.Errorf("served pin %s, printed %s", got, pin)
			}
			roots := x509.NewCertPool()
			roots.AddCert(leaf)
			for _, name := range []string{"localhost", "127.0.0.1"} {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
					t.Errorf("not valid for %s: %v", name, err)
				}
			}
		})
	}
}

// TestBrowserOpensDashboard: headless Chromium opens the dashboard of a
// node with no config at all, from loopback, over TCP (h2) and over
// HTTP/3. Chromium takes a certificate no CA signed on QUIC only when its
// key is pinned (--ignore-certificate-errors is not enough there), which
// is the pin `alknet id` prints.
func TestBrowserOpensDashboard(t *testing.T) {
	chromium := coretest.RequireTool(t, "chromium")
	curl := coretest.RequireTool(t, "curl")
	n := startNode(t, "")
	pin := webPin(t, n.dir)
	url := "https://" + n.hostPort() + "/"

	// conns reads the node's connection count for an ALPN from /metrics,
	// over http/1.1 so that reading it counts on no ALPN under test.
	conns := func(alpn string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, curl, "-sSk", "--http1.1", "--noproxy", "*", url+"metrics").Output()
		if err != nil {
			t.Fatalf("curl /metrics: %v", err)
		}
		m := regexp.MustCompile(`(?m)^alknet_http_connections_total\{alpn="` + regexp.QuoteMeta(alpn) + `"\} (\d+)$`).FindSubmatch(out)
		if m == nil {
			return 0
		}
		c, _ := strconv.Atoi(string(m[1]))
		return c
	}
	for _, tc := range []struct {
		name, alpn string
		flags      []string
	}{
		{"tcp", "h2", []string{"--ignore-certificate-errors"}},
		{"http3", "h3", []string{"--ignore-certificate-errors-spki-list=" + strings.TrimPrefix(pin, "sha256//"), "--origin-to-force-quic-on=" + n.hostPort()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := conns(tc.alpn)
			dom := dumpDOM(t, chromium, url, tc.flags...)
			if want := `id="node-id">` + n.id + `<`; !strings.Contains(dom, want) {
				t.Fatalf("Chromium did not show the dashboard (no %q):\n%.2000s", want, dom)
			}
			if after := conns(tc.alpn); after <= before {
				t.Errorf("the page did not come over %s: %d connections before, %d after", tc.alpn, before, after)
			}
		})
	}
}

// dumpDOM loads url in headless Chromium and returns the DOM it rendered,
// within a minute; Chromium's processes are killed when it does not end.
func dumpDOM(t *testing.T, chromium, url string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--user-data-dir=" + t.TempDir(), "--dump-dom"}, flags...)
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // Chromium refuses to run as root with its sandbox
	}
	cmd := exec.CommandContext(ctx, chromium, append(args, url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if len(out) == 0 {
		t.Fatalf("chromium rendered nothing: %s", lastLines(stderr.String(), 5))
	}
	return string(out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
