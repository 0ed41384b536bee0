// Tests of alknet's patch 6 (ALKNET-PATCHES.md).

package mcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// directServer is a server with the tools of the direct path's tests. Its
// tools count the calls that ran without a session connection (direct).
func directServer(direct *atomic.Int32) *Server {
	s := NewServer(&Implementation{Name: "s", Version: "1"}, nil)
	run := func(req *CallToolRequest) {
		if req.Session.getConn() == nil {
			direct.Add(1)
		}
	}
	obj := map[string]any{"type": "object"}
	s.AddTool(&Tool{Name: "echo", InputSchema: obj}, func(_ context.Context, req *CallToolRequest) (*CallToolResult, error) {
		run(req)
		return &CallToolResult{Content: []Content{&TextContent{Text: string(req.Params.Arguments) + " <&>"}}, StructuredContent: req.Params.Arguments}, nil
	})
	s.AddTool(&Tool{Name: "tool_error", InputSchema: obj}, func(_ context.Context, req *CallToolRequest) (*CallToolResult, error) {
		run(req)
		res := &CallToolResult{}
		res.SetError(errors.New("it failed"))
		return res, nil
	})
	s.AddTool(&Tool{Name: "go_error", InputSchema: obj}, func(_ context.Context, req *CallToolRequest) (*CallToolResult, error) {
		run(req)
		return nil, errors.New("handler error")
	})
	s.AddTool(&Tool{Name: "empty", InputSchema: obj}, func(_ context.Context, req *CallToolRequest) (*CallToolResult, error) {
		run(req)
		return &CallToolResult{}, nil
	})
	// notify tells whether sending to the client failed, as it does in
	// stateless mode.
	s.AddTool(&Tool{Name: "notify", InputSchema: obj}, func(ctx context.Context, req *CallToolRequest) (*CallToolResult, error) {
		run(req)
		err := req.Session.Log(ctx, &LoggingMessageParams{Level: "error", Data: "x"})
		_, lerr := req.Session.ListRoots(ctx, nil)
		return &CallToolResult{Content: []Content{&TextContent{Text: fmt.Sprintf("log failed %v, roots failed %v", err != nil, lerr != nil)}}}, nil
	})
	return s
}

// postNew sends body to h as a 2026-07-28 client would, with the headers
// given as name, value pairs replacing the usual ones ("" removes one).
func postNew(h http.Handler, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set(protocolVersionHeader, protocolVersion20260728)
	req.Header.Set("Mcp-Method", "tools/call")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

const directMeta = `"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`

// toolCall is a 2026-07-28 tools/call body of tool with arguments args.
func toolCall(id, tool, args string) string {
	return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{` + directMeta + `,"name":"` + tool + `","arguments":` + args + `}}`
}

// TestDirectToolCallsAsSession checks that a handler with DirectToolCalls
// answers every request, lone tools/call or not, good or bad, byte for
// byte as the session path does, and that it takes the direct path for the
// tools/call requests the session path would run.
func TestDirectToolCallsAsSession(t *testing.T) {
	var direct atomic.Int32
	s := directServer(&direct)
	handler := func(d bool) http.Handler {
		return NewStreamableHTTPHandler(func(*http.Request) *Server { return s },
			&StreamableHTTPOptions{Stateless: true, JSONResponse: true, DirectToolCalls: d})
	}
	session, directH := handler(false), handler(true)
	for _, c := range []struct {
		name   string
		body   string
		hdr    []string
		direct bool // run on the direct path
	}{
		{"success", toolCall("1", "echo", `{"a":"<b>"}`), []string{"Mcp-Name", "echo"}, true},
		{"string id", toolCall(`"x<y"`, "echo", `{}`), []string{"Mcp-Name", "echo"}, true},
		{"float id", toolCall("2.5", "echo", `{}`), []string{"Mcp-Name", "echo"}, true},
		{"tool error", toolCall("1", "tool_error", `{}`), []string{"Mcp-Name", "tool_error"}, true},
		{"handler error", toolCall("1", "go_error", `{}`), []string{"Mcp-Name", "go_error"}, true},
		{"empty result", toolCall("1", "empty", `{}`), []string{"Mcp-Name", "empty"}, true},
		{"send to client", toolCall("1", "notify", `{}`), []string{"Mcp-Name", "notify"}, true},
		{"unknown tool", toolCall("1", "nope", `{}`), []string{"Mcp-Name", "nope"}, false},
		{"arguments not an object", toolCall("1", "echo", `3`), []string{"Mcp-Name", "echo"}, true},
		{"invalid params", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{` + directMeta + `,"name":"echo","task":7,"arguments":{}}}`, []string{"Mcp-Name", "echo"}, true},
		{"params not an object", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":3}`, nil, false},
		{"no params", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, nil, false},
		{"name mismatch", toolCall("1", "echo", `{}`), []string{"Mcp-Name", "other"}, false},
		{"no name header", toolCall("1", "echo", `{}`), nil, false},
		{"method header mismatch", toolCall("1", "echo", `{}`), []string{"Mcp-Name", "echo", "Mcp-Method", "tools/list"}, false},
		{"meta version mismatch", strings.Replace(toolCall("1", "echo", `{}`), `"2026-07-28"`, `"2025-11-25"`, 1), []string{"Mcp-Name", "echo"}, false},
		{"no meta", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`, []string{"Mcp-Name", "echo"}, false},
		{"bad client info", strings.Replace(toolCall("1", "echo", `{}`), `{"name":"c","version":"1"}`, `3`, 1), []string{"Mcp-Name", "echo"}, false},
		{"no capabilities", strings.Replace(toolCall("1", "echo", `{}`), `"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}},`, ``, 1), []string{"Mcp-Name", "echo"}, false},
		{"last event id", toolCall("1", "echo", `{}`), []string{"Mcp-Name", "echo", "Last-Event-ID", "x_1"}, false},
		{"notification", `{"jsonrpc":"2.0","method":"tools/call","params":{` + directMeta + `,"name":"echo"}}`, []string{"Mcp-Name", "echo"}, false},
		{"batch", `[` + toolCall("1", "echo", `{}`) + `]`, []string{"Mcp-Name", "echo"}, false},
		{"tools/list", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{` + directMeta + `}}`, []string{"Mcp-Method", "tools/list"}, false},
		{"old protocol", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}`, []string{protocolVersionHeader, "2025-06-18", "Mcp-Method", ""}, false},
		{"malformed", `{"jsonrpc":"2.0",`, nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			want := postNew(session, c.body, c.hdr...)
			before := direct.Load()
			got := postNew(directH, c.body, c.hdr...)
			if ran := direct.Load() != before; ran != c.direct {
				t.Errorf("ran on the direct path: %v, want %v", ran, c.direct)
			}
			if got.Code != want.Code || got.Body.String() != want.Body.String() {
				t.Errorf("direct: %d %s\nsession: %d %s", got.Code, got.Body, want.Code, want.Body)
			}
			for _, k := range []string{"Content-Type", "Cache-Control", "Mcp-Session-Id"} {
				if got.Header().Get(k) != want.Header().Get(k) {
					t.Errorf("%s: direct %q, session %q", k, got.Header().Get(k), want.Header().Get(k))
				}
			}
		})
	}
}

// TestDirectToolCallsAllocations bounds the allocations of a 2026-07-28
// tools/call on the direct path: 132 here, 174 on the session path.
func TestDirectToolCallsAllocations(t *testing.T) {
	if raceDetector {
		t.Skip("allocations differ under the race detector")
	}
	var direct atomic.Int32
	s := directServer(&direct)
	for _, c := range []struct {
		direct bool
		max    float64
	}{{false, 1000}, {true, 140}} {
		h := NewStreamableHTTPHandler(func(*http.Request) *Server { return s },
			&StreamableHTTPOptions{Stateless: true, JSONResponse: true, DirectToolCalls: c.direct})
		body := toolCall("1", "echo", `{"text":"0123456789abcdef0123456789abcdef"}`)
		allocs := testing.AllocsPerRun(50, func() {
			if w := postNew(h, body, "Mcp-Name", "echo"); w.Code != 200 {
				t.Fatal(w.Code, w.Body)
			}
		})
		t.Logf("direct %v: %v allocations", c.direct, allocs)
		if allocs > c.max {
			t.Errorf("direct %v: %v allocations for a tools/call, want at most %v", c.direct, allocs, c.max)
		}
	}
}

// FuzzDirectToolCalls checks that the direct path answers any body, sent
// with a tools/call's headers, as the session path does.
func FuzzDirectToolCalls(f *testing.F) {
	for _, tool := range []string{"echo", "tool_error", "go_error", "empty", "nope"} {
		f.Add(toolCall("1", tool, `{"a":[1,"x"]}`), tool)
	}
	f.Add(toolCall(`"id"`, "echo", `null`), "echo")
	f.Add(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{`+directMeta+`,"name":"echo","inputResponses":{},"requestState":"s"}}`, "echo")
	f.Add(`[`+toolCall("1", "echo", `{}`)+`]`, "echo")
	var direct atomic.Int32
	s := directServer(&direct)
	handler := func(d bool) http.Handler {
		return NewStreamableHTTPHandler(func(*http.Request) *Server { return s },
			&StreamableHTTPOptions{Stateless: true, JSONResponse: true, DirectToolCalls: d})
	}
	session, directH := handler(false), handler(true)
	f.Fuzz(func(t *testing.T, body, name string) {
		want := postNew(session, body, "Mcp-Name", name)
		got := postNew(directH, body, "Mcp-Name", name)
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("direct: %d %s\nsession: %d %s", got.Code, got.Body, want.Code, want.Body)
		}
	})
}
