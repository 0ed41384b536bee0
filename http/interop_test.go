package http

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core/coretest"
)

// curl runs curl with args and returns the status and body.
func curl(t *testing.T, bin string, proto string, args ...string) (int, string) {
	t.Helper()
	all := append([]string{"-sS", "-k", proto, "--max-time", "10", "-w", "\n%{http_code}"}, args...)
	out, err := exec.Command(bin, all...).Output()
	if err != nil {
		t.Fatalf("curl %v: %v", args, err)
	}
	s := string(out)
	i := strings.LastIndexByte(s, '\n')
	st, _ := strconv.Atoi(s[i+1:])
	return st, s[:i]
}

func TestCurl(t *testing.T) {
	bin := coretest.RequireTool(t, "curl")
	f := start(t, Limits{MaxBodyBytes: 1024})
	for _, proto := range []string{"--http2", "--http1.1"} {
		t.Run(proto, func(t *testing.T) {
			json := []string{"-H", "Content-Type: application/json"}
			check := func(wantSt int, want string, args ...string) {
				t.Helper()
				st, body := curl(t, bin, proto, args...)
				if st != wantSt || !strings.Contains(body, want) {
					t.Errorf("curl %v: %d %q, want %d containing %q", args, st, body, wantSt, want)
				}
			}
			check(200, `{"text":"c"}`, "-G", "--data-urlencode", `input={"text":"c"}`, f.url("/v1/ops/demo/echo"))
			check(200, `{"sum":5}`, append(json, "-d", `{"a":2,"b":3}`, f.url("/v1/ops/demo/add"))...)
			check(200, `"results":[{"output":{"sum":2}},{"error":{"code":"NOT_FOUND"`, append(json, "-d", `{"calls":[{"operation":"demo/add","input":{"a":1,"b":1}},{"operation":"demo/x"}]}`, f.url("/v1/batch"))...)
			check(200, "data: {\"i\":1}\n\nevent: completed", append(json, "-N", "-H", "Accept: text/event-stream", "-d", `{"n":2}`, f.url("/v1/ops/demo/ticks"))...)
			check(401, "FORBIDDEN", append(json, "-d", `{}`, f.url("/v1/ops/demo/secret"))...)
			check(403, "FORBIDDEN", append(json, "-H", "Authorization: Bearer "+f.user, "-d", `{}`, f.url("/v1/ops/demo/secret"))...)
			check(200, "hush", append(json, "-H", "Authorization: Bearer "+f.admin, "-d", `{}`, f.url("/v1/ops/demo/secret"))...)
			check(404, "NOT_FOUND", append(json, "-d", `{}`, f.url("/v1/ops/demo/hidden"))...)
			check(422, "INVALID_INPUT", append(json, "-d", `{"text":1}`, f.url("/v1/ops/demo/echo"))...)
			check(400, "INVALID_OPERATION_TYPE", append(json, "-d", `{"n":1}`, f.url("/v1/ops/demo/ticks"))...)
			check(504, "TIMEOUT", append(json, "-d", `{}`, f.url("/v1/ops/demo/slow"))...)
			check(503, "UNAVAILABLE", append(json, "-d", `{}`, f.url("/v1/ops/demo/unavailable"))...)
			check(500, "INTERNAL", append(json, "-d", `{}`, f.url("/v1/ops/demo/boom"))...)
			check(418, "TEAPOT", append(json, "-d", `{}`, f.url("/v1/ops/demo/teapot"))...)
			check(400, "INVALID_INPUT", append(json, "-d", `{"text":`, f.url("/v1/ops/demo/echo"))...)
			check(413, "INVALID_INPUT", append(json, "-d", `{"text":"`+strings.Repeat("x", 2000)+`"}`, f.url("/v1/ops/demo/echo"))...)
		})
	}
}
