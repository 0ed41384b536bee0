// Tests of alknet's patches 2 to 4 (ALKNET-PATCHES.md): each patched
// function gives what the released one gave, for less work.

package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	internaljson "github.com/modelcontextprotocol/go-sdk/internal/json"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// metaParams are tools/call params whose `_meta` takes every shape the
// patched decode must treat as v1.8.0 did.
var metaParams = []string{
	``,
	`{}`,
	`[]`,
	`{"name":"t"}`,
	`{"_meta":null}`,
	`{"_meta":"x"}`,
	`{"_meta":[1]}`,
	`{"_meta":{}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-06-18"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":null}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}`,
	`{"_meta":{"IO.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":null}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":"all"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true},"sampling":{}}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":null}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":7}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":"debug"}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/logLevel":3}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-06-18"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}`,
	`{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"other":{"a":[1,2,{"b":null}]}},"name":"t","arguments":{"x":1}}`,
}

// v180ExtractRequestMeta and v180ValidateRequestMeta are the released
// SDK's code, the reference for the patched one.
func v180ExtractRequestMeta(rawParams json.RawMessage) Meta {
	if len(rawParams) == 0 {
		return nil
	}
	var meta struct {
		Meta Meta `json:"_meta"`
	}
	if err := internaljson.Unmarshal(rawParams, &meta); err != nil {
		return nil
	}
	return meta.Meta
}

func v180ValidateRequestMeta(req *jsonrpc.Request) (*validatedMeta, error) {
	if !req.IsCall() {
		return &validatedMeta{}, nil
	}
	meta := v180ExtractRequestMeta(req.Params)
	if meta == nil {
		return &validatedMeta{}, nil
	}
	protocolVersion, ok := meta[MetaKeyProtocolVersion].(string)
	if !ok || protocolVersion < protocolVersion20260728 {
		return &validatedMeta{}, nil
	}
	var clientInfo *Implementation
	if _, present := meta[MetaKeyClientInfo]; present {
		var ok bool
		clientInfo, ok = decodeMetaValue[*Implementation](meta, MetaKeyClientInfo)
		if !ok {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams}
		}
	}
	capabilities, ok := decodeMetaValue[*clientCapabilitiesV2](meta, MetaKeyClientCapabilities)
	if !ok {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams}
	}
	logLevel, _ := decodeMetaValue[LoggingLevel](meta, MetaKeyLogLevel)
	return &validatedMeta{usesNewProtocol: true, initializeParams: &InitializeParams{
		ProtocolVersion: protocolVersion,
		Capabilities:    capabilities.toV1(),
		ClientInfo:      clientInfo,
	}, logLevel: logLevel}, nil
}

func TestRequestMetaAsReleased(t *testing.T) {
	id, err := jsonrpc.MakeID(float64(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, params := range metaParams {
		raw := json.RawMessage(params)
		want, _ := v180ExtractRequestMeta(raw)[MetaKeyProtocolVersion].(string)
		if got := extractRequestMeta(raw).protocolVersion(); got != want {
			t.Errorf("%s: protocol version %q, released SDK %q", params, got, want)
		}
		req := &jsonrpc.Request{ID: id, Method: "tools/call", Params: raw}
		got, gotErr := validateRequestMeta(req)
		want2, wantErr := v180ValidateRequestMeta(req)
		if (gotErr == nil) != (wantErr == nil) {
			t.Errorf("%s: error %v, released SDK %v", params, gotErr, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want2) {
			t.Errorf("%s: %+v, released SDK %+v", params, got, want2)
		}
	}
}

func TestExtractNameAsReleased(t *testing.T) {
	for _, params := range append(metaParams,
		`{"name":"echo","arguments":{"text":"hi"}}`,
		`{"name":7}`,
		`{"name":"t","requestState":1}`,
		`{"name":"t","requestState":"s"}`,
		`{"name":"t","inputResponses":[]}`,
		`{"name":"t","inputResponses":{"a":{"action":"accept"}}}`,
		`{"name":"t","arguments":"not an object"}`,
	) {
		var p CallToolParams
		wantErr := internaljson.Unmarshal([]byte(params), &p)
		got, ok := extractName("tools/call", json.RawMessage(params))
		if wantErr != nil {
			p.Name = ""
		}
		if ok != (wantErr == nil) || got != p.Name {
			t.Errorf("%s: %q %v, released SDK %q %v", params, got, ok, p.Name, wantErr)
		}
	}
}

// TestStatelessHeadersAllocations bounds the work of checking a
// 2026-07-28 tools/call's `_meta` and headers on a server: the released
// SDK decoded `_meta` into maps twice, the arguments into a map, and
// re-encoded the tool's input schema: 186 allocations here.
func TestStatelessHeadersAllocations(t *testing.T) {
	id, err := jsonrpc.MakeID(float64(1))
	if err != nil {
		t.Fatal(err)
	}
	req := &jsonrpc.Request{ID: id, Method: "tools/call", Params: json.RawMessage(`{"_meta":{` +
		`"io.modelcontextprotocol/protocolVersion":"2026-07-28",` +
		`"io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},` +
		`"io.modelcontextprotocol/clientCapabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{},"url":{}}}},` +
		`"name":"echo","arguments":{"text":"0123456789abcdef0123456789abcdef","n":1,"tags":["a","b"]}}`)}
	tool := &Tool{Name: "echo", InputSchema: map[string]any{"type": "object", "properties": map[string]any{
		"text": map[string]any{"type": "string"}, "n": map[string]any{"type": "integer"}, "tags": map[string]any{"type": "array"},
	}}}
	st := &serverTool{tool: tool, paramHeaders: extractParamHeaderAnnotations(tool)}
	lookup := func(string) (*serverTool, bool) { return st, true }
	header := http.Header{}
	header.Set(protocolVersionHeader, "2026-07-28")
	header.Set(methodHeader, "tools/call")
	header.Set(nameHeader, "echo")
	allocs := testing.AllocsPerRun(100, func() {
		if extractRequestMeta(req.Params).protocolVersion() != "2026-07-28" {
			t.Fatal("no protocol version")
		}
		if err := validateMcpHeaders(header, req, lookup); err != nil {
			t.Fatal(err)
		}
		if m, err := validateRequestMeta(req); err != nil || !m.usesNewProtocol {
			t.Fatal(m, err)
		}
	})
	t.Logf("%v allocations", allocs)
	if allocs > 40 {
		t.Errorf("%v allocations to check a request's _meta and headers, want at most 40", allocs)
	}
}

// TestParamHeadersFromAddTool checks that a server checks the Mcp-Param
// headers of a tool added with x-mcp-header annotations against the
// bindings AddTool found (patch 4).
func TestParamHeadersFromAddTool(t *testing.T) {
	s := NewServer(&Implementation{Name: "s", Version: "1"}, nil)
	s.AddTool(&Tool{Name: "geo", InputSchema: map[string]any{"type": "object", "properties": map[string]any{
		"region": map[string]any{"type": "string", "x-mcp-header": "Region"},
	}}}, func(context.Context, *CallToolRequest) (*CallToolResult, error) { return &CallToolResult{}, nil })
	lookup := func(name string) (*serverTool, bool) { return s.tools.get(name) }
	id, err := jsonrpc.MakeID(float64(1))
	if err != nil {
		t.Fatal(err)
	}
	req := &jsonrpc.Request{ID: id, Method: "tools/call", Params: json.RawMessage(`{"name":"geo","arguments":{"region":"eu-west"}}`)}
	for _, c := range []struct {
		region string
		ok     bool
	}{{"", false}, {"us-east", false}, {"eu-west", true}} {
		header := http.Header{}
		header.Set(protocolVersionHeader, "2026-07-28")
		header.Set(methodHeader, "tools/call")
		header.Set(nameHeader, "geo")
		if c.region != "" {
			header.Set(paramHeaderPrefix+"Region", c.region)
		}
		if err := validateMcpHeaders(header, req, lookup); (err == nil) != c.ok {
			t.Errorf("Mcp-Param-Region %q: %v, want ok %v", c.region, err, c.ok)
		}
	}
}
