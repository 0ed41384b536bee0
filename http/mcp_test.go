package http

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
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
