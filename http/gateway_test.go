package http

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
)

// transports are the ways a client reaches the gateway.
func transports(t *testing.T, f *fixture) map[string]*http.Client {
	return map[string]*http.Client{
		"h2":       f.client(t, true),
		"http/1.1": f.client(t, false),
		"h3":       f.h3Client(t, nil),
	}
}

func TestGatewayOverEveryTransport(t *testing.T) {
	f := start(t, Limits{MaxBodyBytes: 4096})
	for name, c := range transports(t, f) {
		t.Run(name, func(t *testing.T) {
			st, hdr, body := do(t, c, "POST", f.url("/v1/ops/demo/echo"), "", `{"text":"hi"}`)
			if st != 200 || strings.TrimSpace(body) != `{"text":"hi"}` {
				t.Fatalf("echo: %d %s", st, body)
			}
			if alt := hdr.Get("Alt-Svc"); (name != "h3") != strings.HasPrefix(alt, `h3=":`) {
				t.Errorf("Alt-Svc %q over %s", alt, name)
			}
			q := url.QueryEscape(`{"text":"q"}`)
			if st, _, body := do(t, c, "GET", f.url("/v1/ops/demo/echo?input="+q), "", ""); st != 200 || !strings.Contains(body, `"q"`) {
				t.Fatalf("GET query: %d %s", st, body)
			}
			if st, _, body := do(t, c, "POST", f.url("/v1/call"), "", `{"operation":"demo/add","input":{"a":1,"b":2}}`); st != 200 || strings.TrimSpace(body) != `{"sum":3}` {
				t.Fatalf("call: %d %s", st, body)
			}
			st, _, body = do(t, c, "POST", f.url("/v1/batch"), "", `{"calls":[{"operation":"demo/add","input":{"a":2,"b":2}},{"operation":"demo/nope"},{"operation":"/demo/echo","input":{"text":"x"}}]}`)
			var br BatchResponse
			if st != 200 || json.Unmarshal([]byte(body), &br) != nil || len(br.Results) != 3 {
				t.Fatalf("batch: %d %s", st, body)
			}
			if string(br.Results[0].Output) != `{"sum":4}` || br.Results[1].Error == nil || br.Results[1].Error.Code != call.CodeNotFound || string(br.Results[2].Output) != `{"text":"x"}` {
				t.Fatalf("batch results: %s", body)
			}
			st, hdr, body = do(t, c, "POST", f.url("/v1/ops/demo/ticks"), "", `{"n":3}`, "Accept", "text/event-stream")
			want := "data: {\"i\":0}\n\ndata: {\"i\":1}\n\ndata: {\"i\":2}\n\nevent: completed\ndata: {}\n\n"
			if st != 200 || body != want || hdr.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("sse: %d %q", st, body)
			}
			if st, _, body := do(t, c, "GET", f.url("/healthz"), "", ""); st != 200 || body != "ok\n" {
				t.Fatalf("healthz: %d %q", st, body)
			}
		})
	}
}

func TestGatewayErrorStatuses(t *testing.T) {
	f := start(t, Limits{MaxBodyBytes: 4096})
	c := f.client(t, true)
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code                            call.Code
		hdr                             []string
	}{
		{"unknown", "POST", "/v1/ops/demo/nope", "", "{}", 404, call.CodeNotFound, nil},
		{"internal op", "POST", "/v1/ops/demo/hidden", "", "{}", 404, call.CodeNotFound, nil},
		{"anonymous", "POST", "/v1/ops/demo/secret", "", "{}", 401, call.CodeForbidden, nil},
		{"no scope", "POST", "/v1/ops/demo/secret", "user", "{}", 403, call.CodeForbidden, nil},
		{"bad token", "POST", "/v1/ops/demo/echo", "alk_nope", "{}", 401, call.CodeForbidden, nil},
		{"bad input", "POST", "/v1/ops/demo/echo", "", `{"text":5}`, 422, call.CodeInvalidInput, nil},
		{"subscription without SSE", "POST", "/v1/ops/demo/ticks", "", `{"n":1}`, 400, call.CodeInvalidOperationType, nil},
		{"GET a mutation", "GET", "/v1/ops/demo/add", "", "", 405, call.CodeInvalidOperationType, nil},
		{"timeout", "POST", "/v1/ops/demo/slow", "", "{}", 504, call.CodeTimeout, nil},
		{"unavailable", "POST", "/v1/ops/demo/unavailable", "", "{}", 503, call.CodeUnavailable, nil},
		{"internal", "POST", "/v1/ops/demo/boom", "", "{}", 500, call.CodeInternal, nil},
		{"declared", "POST", "/v1/ops/demo/teapot", "", "{}", 418, "TEAPOT", nil},
		{"malformed JSON", "POST", "/v1/ops/demo/echo", "", `{"text":`, 400, call.CodeInvalidInput, nil},
		{"malformed call", "POST", "/v1/call", "", `{"operation":1}`, 400, call.CodeInvalidInput, nil},
		{"too large", "POST", "/v1/ops/demo/echo", "", `{"text":"` + strings.Repeat("x", 5000) + `"}`, 413, call.CodeInvalidInput, nil},
		{"SSE error before events", "POST", "/v1/ops/demo/ticks", "", `{"n":"x"}`, 422, call.CodeInvalidInput, []string{"Accept", "text/event-stream"}},
		{"no endpoint", "POST", "/v1/nothing", "", "{}", 404, call.CodeNotFound, nil},
	}
	tokens := map[string]string{"user": f.user, "admin": f.admin}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token
			if v, ok := tokens[tok]; ok {
				tok = v
			}
			st, hdr, body := do(t, c, tc.method, f.url(tc.path), tok, tc.body, tc.hdr...)
			if st != tc.status || errCode(t, body) != tc.code {
				t.Fatalf("got %d %s, want %d %s", st, body, tc.status, tc.code)
			}
			if st == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer: %v", hdr)
			}
			if st == 503 && hdr.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if strings.Contains(body, "secret internals") {
				t.Error("an internal error leaked its text")
			}
		})
	}
	if st, _, body := do(t, c, "POST", f.url("/v1/ops/demo/secret"), f.admin, "{}"); st != 200 || !strings.Contains(body, "hush") {
		t.Fatalf("admin token: %d %s", st, body)
	}
}

func TestAlknetHTTPIdentity(t *testing.T) {
	f := start(t, Limits{})
	c := f.h3Client(t, f.peerKey)
	st, _, body := do(t, c, "POST", f.url("/v1/ops/demo/whoami"), "", "{}")
	if st != 200 || !strings.Contains(body, `"laptop"`) {
		t.Fatalf("whoami over alknet/http: %d %s", st, body)
	}
	// A token beats the connection's identity.
	st, _, body = do(t, c, "POST", f.url("/v1/ops/demo/whoami"), f.admin, "{}")
	if st != 200 || !strings.Contains(body, `"ops"`) {
		t.Fatalf("whoami with token: %d %s", st, body)
	}
	// Plain h3 carries no identity.
	if st, _, _ := do(t, f.h3Client(t, nil), "POST", f.url("/v1/ops/demo/whoami"), "", "{}"); st != 401 {
		t.Fatalf("anonymous h3 whoami: %d", st)
	}
}

func TestRateLimit(t *testing.T) {
	f := start(t, Limits{Rate: 1, Burst: 2})
	c := f.client(t, false)
	var last int
	var hdr http.Header
	for range 3 {
		last, hdr, _ = do(t, c, "POST", f.url("/v1/ops/demo/echo"), "", `{"text":"a"}`)
	}
	if last != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("third request: %d, Retry-After %q", last, hdr.Get("Retry-After"))
	}
	// Another identity has its own bucket.
	if st, _, _ := do(t, c, "POST", f.url("/v1/ops/demo/echo"), f.user, `{"text":"a"}`); st != 200 {
		t.Fatalf("other identity: %d", st)
	}
}

func TestSSEDisconnectAborts(t *testing.T) {
	for _, h2 := range []bool{true, false} {
		f := start(t, Limits{})
		c := f.client(t, h2)
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", f.url("/v1/ops/demo/forever"), strings.NewReader("{}"))
		req.Header.Set("Accept", "text/event-stream")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: {\"i\":0}\n" {
			t.Fatalf("first event %q: %v", line, err)
		}
		began := time.Now()
		cancel()
		resp.Body.Close()
		select {
		case <-f.aborted:
			if d := time.Since(began); d > 100*time.Millisecond {
				t.Errorf("h2=%v: abort reached the handler after %v", h2, d)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("h2=%v: the handler did not see the disconnect", h2)
		}
	}
}

// BenchmarkRESTCall makes `POST /v1/ops/demo/echo` requests with a bearer
// token through a node over h2 on loopback, the path of the call bench's
// REST row.
func BenchmarkRESTCall(b *testing.B) {
	f := start(b, Limits{Rate: -1})
	c := f.client(b, true)
	echoLoop(b, c, f.url("/v1/ops/demo/echo"), "Bearer "+f.user)
}

// BenchmarkPlainCall is BenchmarkRESTCall's floor: the same requests to a
// net/http handler that decodes and encodes the same JSON over h2 on its
// own TLS listener, no gateway (the call bench's plain-h2 row). Their
// difference is what the gateway adds.
func BenchmarkPlainCall(b *testing.B) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in echoIn
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoOut(in))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	b.Cleanup(srv.Close)
	p := new(http.Protocols)
	p.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Protocols: p}
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	echoLoop(b, c, srv.URL+"/v1/ops/demo/echo", "Bearer x")
}

// echoLoop posts the same echo request to url with auth as its
// Authorization until b is done, checking each answer.
func echoLoop(b *testing.B, c *http.Client, url, auth string) {
	body := []byte(`{"text":"0123456789abcdef0123456789abcdef0123456789abcdef"}`)
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequestWithContext(b.Context(), "POST", url, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		out, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(bytes.TrimSpace(out), body) {
			b.Fatalf("echo: %v %d %s", err, resp.StatusCode, out)
		}
	}
}

// TestRouteAsMux: a request that route sends to an operation directly gets,
// byte for byte, the mux's answer, and so do the paths it leaves to the mux
// (unclean, escaped, a trailing slash, no name, other methods).
func TestRouteAsMux(t *testing.T) {
	f := start(t, Limits{Rate: -1})
	c := f.client(t, true)
	for _, tc := range []struct{ method, path, token, body string }{
		{"POST", "/v1/ops/demo/echo", "", `{"text":"hi"}`},
		{"POST", "/v1/ops/demo/echo", f.user, `{"text":"hi"}`},
		{"POST", "/v1/ops/demo/echo", "", `{"text":3}`},
		{"POST", "/v1/ops/demo/echo", "", `{"text":`},
		{"POST", "/v1/ops/demo/add", "", `{"a":1,"b":2}`},
		{"POST", "/v1/ops/demo/teapot", "", `{}`},
		{"POST", "/v1/ops/demo/secret", f.user, `{}`},
		{"POST", "/v1/ops/demo/secret", "", `{}`},
		{"POST", "/v1/ops/demo/whoami", f.admin, `{}`},
		{"POST", "/v1/ops/demo/hidden", "", `{}`},
		{"POST", "/v1/ops/demo/ticks", "", `{"n":2}`},
		{"POST", "/v1/ops/nope", "", `{}`},
		{"POST", "/v1/ops/demo/echo/", "", `{"text":"hi"}`},
		{"POST", "/v1/ops//demo/echo", "", `{"text":"hi"}`},
		{"POST", "/v1/ops/demo/./echo", "", `{"text":"hi"}`},
		{"POST", "/v1/ops/x/../demo/echo", "", `{"text":"hi"}`},
		{"POST", "/v1/ops/demo%2Fecho", "", `{"text":"hi"}`},
		{"POST", "/v1/ops/demo/%65cho", "", `{"text":"hi"}`},
		{"POST", "/v1/ops/", "", `{}`},
		{"POST", "/v1/ops", "", `{}`},
		{"GET", "/v1/ops/demo/echo?input=%7B%22text%22%3A%22hi%22%7D", "", ""},
		{"PUT", "/v1/ops/demo/echo", "", `{}`},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			f.srv.muxOnly.Store(true)
			wantStatus, wantHdr, wantBody := do(t, c, tc.method, f.url(tc.path), tc.token, tc.body)
			f.srv.muxOnly.Store(false)
			status, h, body := do(t, c, tc.method, f.url(tc.path), tc.token, tc.body)
			if status != wantStatus || body != wantBody {
				t.Fatalf("routed: %d %s\nmux: %d %s", status, body, wantStatus, wantBody)
			}
			for _, k := range []string{"Content-Type", "Location", "Allow", "WWW-Authenticate", "Alt-Svc"} {
				if h.Get(k) != wantHdr.Get(k) {
					t.Errorf("%s: routed %q, mux %q", k, h.Get(k), wantHdr.Get(k))
				}
			}
		})
	}
}
