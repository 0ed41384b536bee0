package http

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// bearerTransport adds a token to every request.
type bearerTransport struct {
	token string
	next  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func mcpSession(t testing.TB, f *fixture, token string) *mcp.ClientSession {
	t.Helper()
	hc := f.client(t, true)
	if token != "" {
		hc.Transport = bearerTransport{token, hc.Transport}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	s, err := cl.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: f.url("/mcp"), HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func toolNames(t *testing.T, s *mcp.ClientSession) []string {
	t.Helper()
	res, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

func TestMCPGoClient(t *testing.T) {
	f := start(t, Limits{})
	anon := mcpSession(t, f, "")
	names := toolNames(t, anon)
	if !slices.Contains(names, "demo_echo") || slices.Contains(names, "demo_secret") || slices.Contains(names, "demo_hidden") {
		t.Fatalf("anonymous tools: %v", names)
	}
	if admin := toolNames(t, mcpSession(t, f, f.admin)); !slices.Contains(admin, "demo_secret") {
		t.Fatalf("admin tools lack demo_secret: %v", admin)
	}
	ctx := context.Background()
	// A tool runs as the caller of its request, also when one cached
	// server serves several callers.
	for _, c := range []struct{ token, want string }{{f.admin, "ops"}, {f.user, "user"}, {f.admin, "ops"}, {f.user, "user"}} {
		res, err := mcpSession(t, f, c.token).CallTool(ctx, &mcp.CallToolParams{Name: "demo_whoami", Arguments: map[string]any{}})
		if b, _ := json.Marshal(res.StructuredContent); err != nil || res.IsError || string(b) != `{"text":"`+c.want+`"}` {
			t.Fatalf("demo_whoami as %s: %v %s", c.want, err, b)
		}
	}
	res, err := anon.CallTool(ctx, &mcp.CallToolParams{Name: "demo_add", Arguments: map[string]any{"a": 2, "b": 5}})
	if err != nil || res.IsError {
		t.Fatalf("demo_add: %v %+v", err, res)
	}
	if b, _ := json.Marshal(res.StructuredContent); string(b) != `{"sum":7}` {
		t.Fatalf("demo_add structured %s", b)
	}
	res, err = anon.CallTool(ctx, &mcp.CallToolParams{Name: "demo_teapot", Arguments: map[string]any{}})
	if err != nil || !res.IsError {
		t.Fatalf("demo_teapot: %v %+v", err, res)
	}
	if b, _ := json.Marshal(res.StructuredContent); !json.Valid(b) || string(b) == "null" {
		t.Fatalf("isError without the call error: %s", b)
	}
	res, err = anon.CallTool(ctx, &mcp.CallToolParams{Name: "demo_ticks", Arguments: map[string]any{"input": map[string]any{"n": 50}, "max_events": 3}})
	if err != nil || res.IsError {
		t.Fatalf("demo_ticks: %v %+v", err, res)
	}
	var got struct {
		Events    []tick `json:"events"`
		Completed bool   `json:"completed"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	if json.Unmarshal(b, &got) != nil || len(got.Events) != 3 || got.Completed {
		t.Fatalf("bounded subscription: %s", b)
	}
	res, err = anon.CallTool(ctx, &mcp.CallToolParams{Name: "demo_forever", Arguments: map[string]any{"timeout_ms": 50}})
	if err != nil || res.IsError {
		t.Fatalf("demo_forever: %v %+v", err, res)
	}
}

// TestToolResult: an operation's output is structured content only when it
// is a valid JSON object; the text content is always the output.
func TestToolResult(t *testing.T) {
	for _, c := range []struct {
		out        string
		structured bool
	}{
		{`{"a":1}`, true},
		{" \n{\"a\":[1,2]}", true},
		{`{}`, true},
		{`[1,2]`, false},
		{`"text"`, false},
		{`null`, false},
		{`3`, false},
		{`{"a":`, false},
		{``, false},
	} {
		res := toolResult(json.RawMessage(c.out))
		if res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != c.out {
			t.Fatalf("%q: content %+v", c.out, res)
		}
		if got := res.StructuredContent != nil; got != c.structured {
			t.Fatalf("%q: structured %v, want %v", c.out, got, c.structured)
		}
	}
}

// TestMCPServerCache: the MCP server cached for a scope set offers the
// tools its callers may call, and the operations registered after it was
// cached.
func TestMCPServerCache(t *testing.T) {
	f := start(t, Limits{})
	anon, user := mcpSession(t, f, ""), mcpSession(t, f, f.user)
	for _, c := range []struct {
		name    string
		s       *mcp.ClientSession
		whoami  bool // an identity without scopes still sees demo_whoami
		lateSee bool
	}{
		{"anonymous", anon, false, false},
		{"user", user, true, false},
	} {
		if got := slices.Contains(toolNames(t, c.s), "demo_whoami"); got != c.whoami {
			t.Fatalf("%s sees demo_whoami: %v, want %v", c.name, got, c.whoami)
		}
		if slices.Contains(toolNames(t, c.s), "demo_late") {
			t.Fatalf("%s sees demo_late before it is registered", c.name)
		}
	}
	err := call.Register(f.reg, call.Spec{Name: "demo/late", Access: core.AccessControl{Public: true}},
		func(_ context.Context, _ *call.Request, in echoIn) (echoOut, error) { return echoOut(in), nil })
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*mcp.ClientSession{"anonymous": anon, "user": user} {
		if !slices.Contains(toolNames(t, s), "demo_late") {
			t.Fatalf("%s does not see demo_late once registered", name)
		}
		res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "demo_late", Arguments: map[string]any{"text": "hi"}})
		if b, _ := json.Marshal(res.StructuredContent); err != nil || res.IsError || string(b) != `{"text":"hi"}` {
			t.Fatalf("demo_late as %s: %v %s", name, err, b)
		}
	}
}

// BenchmarkMCPToolCall makes tools/call requests of demo_echo through a
// node's /mcp over h2 on loopback, the path of the call bench's MCP row.
func BenchmarkMCPToolCall(b *testing.B) {
	f := start(b, Limits{Rate: -1})
	s := mcpSession(b, f, "")
	params := &mcp.CallToolParams{Name: "demo_echo", Arguments: map[string]any{"text": "0123456789abcdef0123456789abcdef0123456789abcdef"}}
	b.ReportAllocs()
	for b.Loop() {
		res, err := s.CallTool(b.Context(), params)
		if err != nil || res.IsError {
			b.Fatalf("demo_echo: %v %+v", err, res)
		}
	}
}

// mcpMeta is the _meta of a 2026-07-28 request, as the Go SDK's client
// sends it.
const mcpMeta = `"_meta":{"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true}},"io.modelcontextprotocol/clientInfo":{"name":"test","version":"1"},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}`

// mcpToolCall is the body of a 2026-07-28 tools/call of tool.
func mcpToolCall(tool, args string) string {
	return `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{` + mcpMeta + `,"name":"` + tool + `","arguments":` + args + `}}`
}

// TestMCPDirectAsSession: a tools/call answered on the SDK's direct path
// (DirectToolCalls) gets, byte for byte, the answer of the SDK's session
// path, for results, tool errors, bad requests and callers of every access;
// and a tool needs the access its operation needs over REST.
func TestMCPDirectAsSession(t *testing.T) {
	f := start(t, Limits{Rate: -1})
	c := f.client(t, true)
	hdr := func(tool string) []string {
		return []string{"Accept", "application/json, text/event-stream", "Mcp-Protocol-Version", "2026-07-28", "Mcp-Method", "tools/call", "Mcp-Name", tool}
	}
	for _, tc := range []struct {
		name, token, tool, body string
		status                  int
		want                    string // in the body
		rest                    string // the operation called over REST with the same token, when set
		restStatus              int
	}{
		{"success", "", "demo_echo", mcpToolCall("demo_echo", `{"text":"<hi>"}`), 200, `"structuredContent":{"text":"\u003chi\u003e"},"resultType":"complete"`, "", 0},
		{"tool error", "", "demo_teapot", mcpToolCall("demo_teapot", `{}`), 200, `"isError":true`, "", 0},
		{"invalid input", "", "demo_echo", mcpToolCall("demo_echo", `{"text":3}`), 200, `INVALID_INPUT`, "", 0},
		{"arguments not an object", "", "demo_echo", mcpToolCall("demo_echo", `"x"`), 200, `INVALID_INPUT`, "", 0},
		{"unknown tool", "", "nope", mcpToolCall("nope", `{}`), 400, `"code":-32602,"message":"unknown tool \"nope\""`, "", 0},
		{"invalid params", "", "demo_echo", `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":3}`, 400, `-32602`, "", 0},
		{"name header mismatch", "", "demo_add", mcpToolCall("demo_echo", `{}`), 400, `-32020`, "", 0},
		{"internal error", "", "demo_boom", mcpToolCall("demo_boom", `{}`), 200, `"code\":\"INTERNAL\"`, "", 0},
		{"secret, anonymous", "", "demo_secret", mcpToolCall("demo_secret", `{}`), 400, `unknown tool \"demo_secret\"`, "/v1/ops/demo/secret", 401},
		{"secret, user", f.user, "demo_secret", mcpToolCall("demo_secret", `{}`), 400, `unknown tool \"demo_secret\"`, "/v1/ops/demo/secret", 403},
		{"secret, admin", f.admin, "demo_secret", mcpToolCall("demo_secret", `{}`), 200, `"resultType":"complete"`, "/v1/ops/demo/secret", 200},
		{"whoami, user", f.user, "demo_whoami", mcpToolCall("demo_whoami", `{}`), 200, `"structuredContent":{"text":"user"}`, "/v1/ops/demo/whoami", 200},
		{"whoami, anonymous", "", "demo_whoami", mcpToolCall("demo_whoami", `{}`), 400, `unknown tool`, "/v1/ops/demo/whoami", 401},
		{"bad token", "not-a-token", "demo_echo", mcpToolCall("demo_echo", `{"text":"x"}`), 401, ``, "/v1/ops/demo/echo", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.srv.mcpSessionOnly.Store(true)
			wantStatus, wantHdr, wantBody := do(t, c, http.MethodPost, f.url("/mcp"), tc.token, tc.body, hdr(tc.tool)...)
			f.srv.mcpSessionOnly.Store(false)
			status, h, body := do(t, c, http.MethodPost, f.url("/mcp"), tc.token, tc.body, hdr(tc.tool)...)
			if status != wantStatus || body != wantBody {
				t.Fatalf("direct: %d %s\nsession: %d %s", status, body, wantStatus, wantBody)
			}
			for _, k := range []string{"Content-Type", "Cache-Control"} {
				if h.Get(k) != wantHdr.Get(k) {
					t.Errorf("%s: direct %q, session %q", k, h.Get(k), wantHdr.Get(k))
				}
			}
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("%d %s, want %d and %s", status, body, tc.status, tc.want)
			}
			if tc.rest != "" {
				if st, _, b := do(t, c, http.MethodPost, f.url(tc.rest), tc.token, `{}`); st != tc.restStatus {
					t.Fatalf("REST %s: %d %s, want %d", tc.rest, st, b, tc.restStatus)
				}
			}
		})
	}
}
