package main

import (
	"os/exec"
	"strings"
	"testing"

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
