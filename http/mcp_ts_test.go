package http

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core/coretest"
)

// mcpClientDir holds the TypeScript SDK client script and its lockfile.
const mcpClientDir = "testdata/mcpclient"

// tsToolResult is an MCP CallToolResult as the TypeScript SDK returns it,
// or the message of the exception it threw.
type tsToolResult struct {
	IsError           bool            `json:"isError"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	Content           []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
	Thrown string `json:"thrown"`
}

// callError returns the call error an isError result carries, as
// structured content or else as the JSON text of its first content block.
func (r tsToolResult) callError() (call.Error, bool) {
	var e call.Error
	b := r.StructuredContent
	if len(b) == 0 && len(r.Content) > 0 && r.Content[0].Type == "text" {
		b = []byte(r.Content[0].Text)
	}
	return e, r.IsError && json.Unmarshal(b, &e) == nil && e.Code != ""
}

// tsSession is what client.mjs reports for one token.
type tsSession struct {
	Server struct {
		Name string `json:"name"`
	} `json:"server"`
	Tools  []string     `json:"tools"`
	Add    tsToolResult `json:"add"`
	Teapot tsToolResult `json:"teapot"`
	Ticks  tsToolResult `json:"ticks"`
}

// requireTSClient returns the path of node once the client's dependencies
// are installed; without them the test is skipped, or fails under
// ALKNET_REQUIRE_INTEROP=1.
func requireTSClient(t *testing.T) string {
	t.Helper()
	node := coretest.RequireTool(t, "node")
	if _, err := os.Stat(filepath.Join(mcpClientDir, "node_modules", "@modelcontextprotocol", "sdk", "package.json")); err != nil {
		const msg = "MCP TypeScript SDK not installed: run `npm ci --prefix http/testdata/mcpclient`"
		if os.Getenv("ALKNET_REQUIRE_INTEROP") == "1" {
			t.Fatalf("%s (ALKNET_REQUIRE_INTEROP=1): %v", msg, err)
		}
		t.Skip(msg)
	}
	return node
}

// runTSClient runs testdata/mcpclient/client.mjs with node against the
// fixture's /mcp once per token and returns its sessions in token order.
func runTSClient(t *testing.T, node string, f *fixture, tokens ...string) []tsSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"client.mjs", f.url("/mcp")}, tokens...)...)
	cmd.Dir = mcpClientDir
	// The node certificate is self-signed over the node key and names the
	// NodeID, not 127.0.0.1, so no CA file would make Node's hostname
	// check pass: verification is off for this loopback child only.
	cmd.Env = append(os.Environ(), "NODE_TLS_REJECT_UNAUTHORIZED=0", "NODE_NO_WARNINGS=1")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = ee.Stderr
		}
		t.Fatalf("node client.mjs: %v\n%s", err, stderr)
	}
	var sessions []tsSession
	if err := json.Unmarshal(out, &sessions); err != nil || len(sessions) != len(tokens) {
		t.Fatalf("client.mjs output (%v): %s", err, out)
	}
	return sessions
}

// TestMCPTypeScriptClient drives /mcp with the official TypeScript SDK:
// the tool list is filtered per caller, a tool's structured output comes
// back, and a failing operation is an isError result carrying the call
// error.
func TestMCPTypeScriptClient(t *testing.T) {
	node := requireTSClient(t)
	f := start(t, Limits{})
	got := runTSClient(t, node, f, "", f.user, f.admin)
	anon, user, admin := got[0], got[1], got[2]
	t.Logf("tools: anonymous %v, user %v, admin %v", anon.Tools, user.Tools, admin.Tools)

	for name, s := range map[string]tsSession{"anonymous": anon, "user": user, "admin": admin} {
		if s.Server.Name == "" {
			t.Errorf("%s: no server info after initialize", name)
		}
		if !slices.Contains(s.Tools, "demo_echo") || slices.Contains(s.Tools, "demo_hidden") {
			t.Errorf("%s tools: %v", name, s.Tools)
		}
		if s.Add.Thrown != "" || s.Add.IsError || string(s.Add.StructuredContent) != `{"sum":7}` {
			t.Errorf("%s demo_add: %+v (structured %s)", name, s.Add, s.Add.StructuredContent)
		}
		// The SDK's callTool (1.32.2, typescript-sdk#1943) validates
		// structured content against the tool's output schema even on
		// isError results: a call error there surfaces as a thrown -32602
		// instead of the result. The error may come as text instead.
		if e, ok := s.Teapot.callError(); !ok || e.Code != "TEAPOT" || e.Message != "short and stout" {
			t.Errorf("%s demo_teapot: %+v (structured %s)", name, s.Teapot, s.Teapot.StructuredContent)
		}
		var ticks struct {
			Events    []tick `json:"events"`
			Completed bool   `json:"completed"`
		}
		if s.Ticks.Thrown != "" || s.Ticks.IsError || json.Unmarshal(s.Ticks.StructuredContent, &ticks) != nil ||
			len(ticks.Events) != 3 || ticks.Completed {
			t.Errorf("%s demo_ticks: %+v (structured %s)", name, s.Ticks, s.Ticks.StructuredContent)
		}
	}
	// A token without scopes sees what anonymous callers see plus what
	// needs only an identity, never demo_secret; the admin token sees it.
	if slices.Contains(anon.Tools, "demo_secret") || slices.Contains(user.Tools, "demo_secret") || !slices.Contains(admin.Tools, "demo_secret") {
		t.Errorf("demo_secret listed wrongly: anonymous %v, user %v, admin %v", anon.Tools, user.Tools, admin.Tools)
	}
	if len(anon.Tools) > len(user.Tools) || len(user.Tools) >= len(admin.Tools) {
		t.Errorf("tool lists not filtered by caller: anonymous %d, user %d, admin %d", len(anon.Tools), len(user.Tools), len(admin.Tools))
	}
}
