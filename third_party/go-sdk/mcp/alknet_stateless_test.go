// Tests of alknet's patch 5 (ALKNET-PATCHES.md).

package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// statelessHandler serves a server with one tool, echo, statelessly with
// JSON responses, as alknet's http module does.
func statelessHandler() http.Handler {
	s := NewServer(&Implementation{Name: "s", Version: "1"}, nil)
	s.AddTool(&Tool{Name: "echo", InputSchema: map[string]any{"type": "object"}},
		func(_ context.Context, req *CallToolRequest) (*CallToolResult, error) {
			return &CallToolResult{Content: []Content{&TextContent{Text: string(req.Params.Arguments)}}}, nil
		})
	return NewStreamableHTTPHandler(func(*http.Request) *Server { return s }, &StreamableHTTPOptions{Stateless: true, JSONResponse: true})
}

// postStateless sends body to h as a 2025-06-18 client would.
func postStateless(h http.Handler, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(protocolVersionHeader, "2025-06-18")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestStatelessBodies checks the answers of a stateless handler to
// bodies good and bad: patch 5 hands servePOST the body
// ephemeralConnectOpts decoded, and only when it decoded.
func TestStatelessBodies(t *testing.T) {
	h := statelessHandler()
	for _, c := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1}}}`, 200,
			`{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"a\":1}"}]}}`},
		{`{"jsonrpc":"2.0","id":"x","method":"tools/list"}`, 200, `"name":"echo"`},
		{``, 400, "POST requires a non-empty body"},
		{`{"jsonrpc":"2.0",`, 400, "malformed payload"},
		{`null`, 400, "malformed payload"},
		{`[]`, 400, "malformed payload: empty batch"},
		{`[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]`, 400, "JSON-RPC batching is not supported"},
	} {
		w := postStateless(h, c.body)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%q: %d %s, want %d and %q", c.body, w.Code, w.Body, c.status, c.want)
		}
	}
}

// TestStatelessAllocations bounds the allocations of a stateless
// tools/call: 139 here when its body was read and decoded twice, 125 with
// patch 5.
func TestStatelessAllocations(t *testing.T) {
	if raceDetector {
		t.Skip("allocations differ under the race detector")
	}
	h := statelessHandler()
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"0123456789abcdef0123456789abcdef"}}}`
	allocs := testing.AllocsPerRun(50, func() {
		if w := postStateless(h, body); w.Code != 200 {
			t.Fatal(w.Code, w.Body)
		}
	})
	if allocs > 130 {
		t.Errorf("%v allocations for a stateless tools/call, want at most 130", allocs)
	}
}
