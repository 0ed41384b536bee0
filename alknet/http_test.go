package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestHTTPServiceWithCurl drives the built binary's http service with curl
// over h2 and http/1.1: the call registry's built-in operations as REST.
func TestHTTPServiceWithCurl(t *testing.T) {
	curl := coretest.RequireTool(t, "curl")
	n := startNode(t, "[http]\nrate = 100\n")
	hostport := n.addr[strings.IndexByte(n.addr, '@')+1:]
	for _, proto := range []string{"--http2", "--http1.1"} {
		get := func(path string, extra ...string) string {
			t.Helper()
			args := append([]string{"-sS", "-k", proto, "--max-time", "10", "-w", " %{http_code}"}, extra...)
			out, err := exec.Command(curl, append(args, "https://"+hostport+path)...).Output()
			if err != nil {
				t.Fatalf("curl %s: %v", path, err)
			}
			return string(out)
		}
		if out := get("/healthz"); out != "ok\n 200" {
			t.Errorf("%s healthz: %q", proto, out)
		}
		if out := get("/v1/ops/services/ping"); !strings.Contains(out, `"pong":true`) || !strings.HasSuffix(out, " 200") {
			t.Errorf("%s services/ping: %q", proto, out)
		}
		if out := get("/v1/ops/services/stats", "-X", "POST", "-d", "{}"); !strings.HasSuffix(out, " 401") {
			t.Errorf("%s services/stats without a token: %q", proto, out)
		}
		if out := get("/openapi.json"); !strings.Contains(out, `"openapi": "3.1.0"`) {
			t.Errorf("%s openapi.json: %q", proto, out)
		}
	}
}

// TestReloadEndsEventStream checks that an SSE subscription of a revoked
// token ends within about a second of the config file disabling it, as
// core's own connections do.
func TestReloadEndsEventStream(t *testing.T) {
	token, hash, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	config := func(enabled bool) string {
		return fmt.Sprintf("[http]\nrate = 100\n\n[[tokens]]\nname = \"watcher\"\nhash = %q\nenabled = %v\n", hash.String(), enabled)
	}
	n := startNode(t, config(true))
	cfg := filepath.Join(n.dir, "alknet.toml")
	hostport := n.addr[strings.IndexByte(n.addr, '@')+1:]

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	req, err := http.NewRequestWithContext(t.Context(), "POST", "https://"+hostport+"/v1/ops/sys/ticks", strings.NewReader(`{"count":1000,"interval":"50ms"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("subscription: %s over %s", resp.Status, resp.Proto)
	}
	events := bufio.NewReader(resp.Body)
	if line, err := events.ReadString('\n'); err != nil || !strings.HasPrefix(line, `data: {"at":`) {
		t.Fatalf("first event %q: %v", line, err)
	}

	start := time.Now()
	writeFile(t, cfg, config(false))
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(events)
		rest <- string(b)
	}()
	select {
	case got := <-rest:
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("the stream ended %v after the reload", d)
		}
		if !strings.Contains(got, "event: error\ndata: {\"code\":\"FORBIDDEN\",\"message\":\"credentials revoked\"") {
			t.Errorf("the stream ended without the revocation error:\n%s", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the stream still runs 5 s after the reload:\n%s", n.logText())
	}
	n.waitLog(t, `http: request revoked.*id=watcher`)
}
