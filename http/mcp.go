package http

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// Bounds of a subscription called as an MCP tool.
const (
	DefaultMCPMaxEvents = 10
	MaxMCPMaxEvents     = 1000
	DefaultMCPTimeout   = 5 * time.Second
	MaxMCPTimeout       = 60 * time.Second
)

// mcpHandler serves MCP's streamable HTTP transport at /mcp. It is
// stateless: every request is served by the MCP server whose tools are the
// operations its caller may call, so a token's scopes apply per request.
//
// A revoked caller's tool call ends with a FORBIDDEN error result: the
// tools see the request's end (withRequestEnd), while the transport, which
// would answer an ended request with an empty body, sees only the client
// going away.
//
// A tools/call of the 2026-07-28 protocol is answered without the SDK's
// per-request session (its DirectToolCalls, alknet's patch 6 of the SDK):
// the tools here never send to the client, which a stateless session could
// not carry either.
func (s *Server) mcpHandler() http.Handler {
	sdk := func(direct bool) http.Handler {
		return mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
			srv, _ := r.Context().Value(mcpServerKey{}).(*mcp.Server)
			return srv
		}, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true, DirectToolCalls: direct, Logger: s.logger})
	}
	direct, session := sdk(true), sdk(false)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := direct
		if s.mcpSessionOnly.Load() {
			h = session
		}
		ctx := r.Context()
		// The SDK asks for the server twice a request (to check the
		// protocol version, then to serve): look it up once.
		ctx = context.WithValue(ctx, mcpServerKey{}, s.mcp.server(s, Caller(ctx)))
		unrevoked, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		defer cancel(nil)
		stop := context.AfterFunc(ctx, func() {
			if !revoked(ctx) {
				cancel(context.Cause(ctx))
			}
		})
		defer stop()
		h.ServeHTTP(w, r.WithContext(unrevoked))
	})
}

// mcpServerKey holds the MCP server of a request's caller.
type mcpServerKey struct{}

// maxMCPServers bounds the cached MCP servers: one per set of visible
// operations, which the configured scopes keep few. maxMCPCallers bounds
// the cached scope sets.
const (
	maxMCPServers = 64
	maxMCPCallers = 256
)

// mcpServers caches an MCP server per set of visible operations. Building
// one converts every tool's schemas, far more work than a call; a registry
// only grows and its operations never change, so the operations' names
// identify a server's tools. Which operations a caller sees depends only on
// its scopes (or on its having none, anonymous) and on the registry, so the
// server of a scope set is cached too, for the registry's size it was
// found at: listing the visible operations costs more than a small call.
// The zero value is ready.
type mcpServers struct {
	mu       sync.Mutex
	servers  map[string]*mcp.Server // by the visible operations' names
	byScopes map[string]scopedServer
}

// scopedServer is the MCP server of a scope set, and the registry's size
// when it was chosen.
type scopedServer struct {
	srv *mcp.Server
	ops int
}

// server returns the MCP server for the operations caller may call.
func (c *mcpServers) server(s *Server, caller *core.Identity) *mcp.Server {
	ops := s.cfg.Registry.Len()
	scopes := scopesKey(caller)
	c.mu.Lock()
	if e, ok := c.byScopes[scopes]; ok && e.ops == ops {
		c.mu.Unlock()
		return e.srv
	}
	c.mu.Unlock()
	specs := s.disp.Visible(caller)
	var key strings.Builder
	for _, spec := range specs {
		key.WriteString(spec.Name)
		key.WriteByte(0)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	srv, ok := c.servers[key.String()]
	if !ok {
		if c.servers == nil || len(c.servers) >= maxMCPServers {
			c.servers = make(map[string]*mcp.Server)
		}
		srv = s.mcpServer(specs)
		c.servers[key.String()] = srv
	}
	if c.byScopes == nil || len(c.byScopes) >= maxMCPCallers {
		c.byScopes = make(map[string]scopedServer)
	}
	// ops was read before the operations were listed: a registration in
	// between only makes the next request list them again.
	c.byScopes[scopes] = scopedServer{srv: srv, ops: ops}
	return srv
}

// scopesKey identifies what a caller may see: "" for an anonymous caller,
// its scopes otherwise.
func scopesKey(caller *core.Identity) string {
	if caller == nil {
		return ""
	}
	var b strings.Builder
	b.WriteByte(1) // an identity without scopes still differs from none
	for _, sc := range caller.Scopes {
		b.WriteString(sc)
		b.WriteByte(0)
	}
	return b.String()
}

// mcpServer returns an MCP server with one tool per operation of specs,
// named service_op. A tool runs as the caller of the request it serves.
func (s *Server) mcpServer(specs []call.Spec) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "alknet", Version: "1"}, &mcp.ServerOptions{Logger: s.logger})
	for _, spec := range specs {
		t := mcpTool(spec)
		srv.AddTool(t.tool, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			ctx, release := withRequestEnd(ctx)
			defer release()
			return s.callTool(ctx, Caller(ctx), spec, t.wrapped, req.Params.Arguments), nil
		})
	}
	return srv
}

// withRequestEnd returns ctx ended, with the same cause, when the HTTP
// request it serves ends: the MCP server runs a tool on a context of its
// own, which neither a client going away nor a revoked caller ends.
func withRequestEnd(ctx context.Context) (context.Context, func()) {
	req, ok := ctx.Value(requestKey{}).(context.Context)
	if !ok || ctx.Done() == req.Done() {
		// Not a request's, or on the request's context already (a tool
		// call the SDK answers on the request's goroutine): ctx ends when
		// the request does, with its cause.
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(req, func() { cancel(context.Cause(req)) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// toolDef is an operation as an MCP tool.
type toolDef struct {
	tool *mcp.Tool
	// wrapped: the operation's input is the "input" argument, not the
	// arguments themselves (non-object inputs and subscriptions).
	wrapped bool
}

// ToolName is the MCP tool name of an operation: "fs/stat" is "fs_stat".
func ToolName(op string) string { return strings.ReplaceAll(op, "/", "_") }

// mcpTool describes spec as a tool. MCP wants object inputs: other inputs,
// and subscriptions (which take max_events and timeout_ms too), travel in
// an "input" property.
func mcpTool(spec call.Spec) toolDef {
	in := schemaMap(spec.Input)
	out := schemaMap(spec.Output)
	d := toolDef{tool: &mcp.Tool{Name: ToolName(spec.Name), Title: spec.Name, Description: spec.Description}}
	switch {
	case spec.Type == call.Subscription:
		d.wrapped = true
		props := map[string]any{
			"max_events": map[string]any{"type": "integer", "minimum": 1, "maximum": MaxMCPMaxEvents, "description": "stop after this many events (default 10)"},
			"timeout_ms": map[string]any{"type": "integer", "minimum": 1, "maximum": MaxMCPTimeout.Milliseconds(), "description": "stop after this long (default 5000)"},
		}
		if in != nil {
			props["input"] = in
		}
		d.tool.InputSchema = map[string]any{"type": "object", "properties": props}
		d.tool.Description += " (subscription: returns the events collected within max_events and timeout_ms)"
		events := map[string]any{"type": "array"}
		if out != nil {
			events["items"] = out
		}
		d.tool.OutputSchema = orCallError(map[string]any{"type": "object", "properties": map[string]any{
			"events": events, "completed": map[string]any{"type": "boolean"},
		}, "required": []string{"events", "completed"}})
	case in == nil:
		d.tool.InputSchema = map[string]any{"type": "object"}
	case in["type"] == "object":
		d.tool.InputSchema = in
	default:
		d.wrapped = true
		d.tool.InputSchema = map[string]any{"type": "object", "properties": map[string]any{"input": in}}
	}
	if spec.Type != call.Subscription && out != nil && out["type"] == "object" {
		d.tool.OutputSchema = orCallError(out)
	}
	return d
}

// callErrorSchema is the JSON Schema of a call error, the structured
// content of an isError result.
var callErrorSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"code":      map[string]any{"type": "string"},
		"message":   map[string]any{"type": "string"},
		"retryable": map[string]any{"type": "boolean"},
		"details":   map[string]any{},
	},
	"required": []string{"code", "message", "retryable"},
}

// orCallError widens a tool's output schema to admit the call error too:
// an isError result carries the call error as structured content, and
// clients (the TypeScript SDK among them) check structured content against
// the output schema even on errors.
func orCallError(out map[string]any) map[string]any {
	return map[string]any{"type": "object", "anyOf": []any{out, callErrorSchema}}
}

// schemaMap returns a schema as a JSON object, nil for none.
func schemaMap(v any) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// subArgs are the arguments of a subscription tool.
type subArgs struct {
	Input     json.RawMessage `json:"input"`
	MaxEvents int             `json:"max_events"`
	TimeoutMS int64           `json:"timeout_ms"`
}

// callTool runs an operation for tools/call. Operation errors are isError
// results whose structured content is the call error.
func (s *Server) callTool(ctx context.Context, caller *core.Identity, spec call.Spec, wrapped bool, args json.RawMessage) *mcp.CallToolResult {
	input := args
	var sub subArgs
	if wrapped && len(args) > 0 {
		if err := json.Unmarshal(args, &sub); err != nil {
			return toolError(call.Errorf(call.CodeInvalidInput, "arguments: %s", jsonReason(err)))
		}
		input = sub.Input
	}
	if spec.Type != call.Subscription {
		out, err := s.runQuery(ctx, caller, spec.Name, input)
		if err != nil {
			return toolError(err)
		}
		return toolResult(out)
	}
	maxEvents := min(max(sub.MaxEvents, 0), MaxMCPMaxEvents)
	if maxEvents == 0 {
		maxEvents = DefaultMCPMaxEvents
	}
	timeout := min(time.Duration(max(sub.TimeoutMS, 0))*time.Millisecond, MaxMCPTimeout)
	if timeout == 0 {
		timeout = DefaultMCPTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		mu     sync.Mutex
		events = []json.RawMessage{}
		full   bool
	)
	err := s.disp.Run(ctx, caller, spec.Name, input, func(b json.RawMessage) error {
		mu.Lock()
		defer mu.Unlock()
		if full {
			return errEnough
		}
		events = append(events, b)
		if len(events) >= maxEvents {
			full = true
			cancel() // enough: end the subscription
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	full = true
	if revoked(ctx) {
		return toolError(errRevokedCall())
	}
	bounded := ctx.Err() != nil // the bound, not the operation, ended it
	if err != nil && !bounded {
		return toolError(asCallError(err))
	}
	b, _ := json.Marshal(map[string]any{"events": events, "completed": err == nil && !bounded})
	return toolResult(b)
}

// errEnough stops a subscription tool that has its events.
var errEnough = &call.Error{Code: call.CodeInternal, Message: "enough events"}

// toolResult is a successful result: the output as text and, when it is
// an object, as structured content.
func toolResult(out json.RawMessage) *mcp.CallToolResult {
	res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(out)}}}
	// An object opens with a brace: no need to decode it into a map, only
	// to check it is valid (a routed operation's output comes from a peer).
	if b := bytes.TrimLeft(out, " \t\r\n"); len(b) > 0 && b[0] == '{' && json.Valid(b) {
		res.StructuredContent = json.RawMessage(out)
	}
	return res
}

// toolError is an isError result carrying the call error.
func toolError(e *call.Error) *mcp.CallToolResult {
	b, _ := json.Marshal(e)
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}, StructuredContent: json.RawMessage(b)}
}
