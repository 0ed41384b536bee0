package http

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// errorStatuses are the protocol errors every operation may answer.
var errorStatuses = map[int]string{
	400: "malformed body or wrong operation type (INVALID_OPERATION_TYPE)",
	401: "authentication required (FORBIDDEN without credentials)",
	403: "the caller lacks a scope (FORBIDDEN)",
	404: "no such operation (NOT_FOUND)",
	413: "body too large",
	422: "input does not match the schema (INVALID_INPUT)",
	429: "rate limited; see Retry-After",
	500: "the operation failed (INTERNAL, or an undeclared code)",
	503: "a peer is unavailable (UNAVAILABLE); see Retry-After",
	504: "the deadline passed (TIMEOUT)",
}

// OpenAPI returns the OpenAPI 3.1 document of the operations caller may
// call: one path per external operation under /v1/ops/, with its input and
// output schemas and error responses.
func (s *Server) OpenAPI(caller *core.Identity) ([]byte, error) {
	paths := map[string]any{}
	for _, spec := range s.disp.Visible(caller) {
		paths["/v1/ops/"+spec.Name] = pathItem(spec)
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "alknet operations",
			"version":     "1",
			"description": "The call registry of node " + s.cfg.NodeID + ", filtered by the caller's access.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "an alk_ API token"},
			},
			"schemas": map[string]any{
				"CallError": map[string]any{
					"type":     "object",
					"required": []string{"code", "message", "retryable"},
					"properties": map[string]any{
						"code":      map[string]any{"type": "string"},
						"message":   map[string]any{"type": "string"},
						"retryable": map[string]any{"type": "boolean"},
						"details":   map[string]any{},
					},
				},
			},
		},
	}
	return json.MarshalIndent(doc, "", "  ")
}

// serveOpenAPI answers GET /openapi.json.
func (s *Server) serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	b, err := s.OpenAPI(Caller(r.Context()))
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, call.Errorf(call.CodeInternal, "openapi document"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// pathItem describes one operation's path.
func pathItem(spec call.Spec) map[string]any {
	schema := func(v any) any {
		if v == nil {
			return map[string]any{}
		}
		return v
	}
	var in, out any
	if spec.Input != nil {
		in = spec.Input
	}
	if spec.Output != nil {
		out = spec.Output
	}
	okContent := map[string]any{"application/json": map[string]any{"schema": schema(out)}}
	if spec.Type == call.Subscription {
		okContent = map[string]any{"text/event-stream": map[string]any{
			"schema": map[string]any{"type": "string", "description": "one data: line per output (JSON), then event: completed or event: error"},
		}}
	}
	responses := map[string]any{"200": map[string]any{"description": "the output", "content": okContent}}
	errRef := map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/CallError"}}}
	for st, d := range errorStatuses {
		responses[strconv.Itoa(st)] = map[string]any{"description": d, "content": errRef}
	}
	declared := append([]call.ErrorDef(nil), spec.Errors...)
	sort.Slice(declared, func(i, j int) bool { return declared[i].Code < declared[j].Code })
	for _, e := range declared {
		st := e.HTTPStatus
		if st == 0 {
			st = 500
		}
		key := strconv.Itoa(st)
		if _, taken := errorStatuses[st]; !taken {
			if _, dup := responses[key]; !dup {
				responses[key] = map[string]any{"description": string(e.Code) + ": " + e.Description, "content": errRef}
			}
		}
	}
	id := strings.ReplaceAll(spec.Name, "/", "_")
	op := map[string]any{
		"operationId": id,
		"summary":     spec.Name,
		"description": spec.Description + " (" + string(spec.Type) + ")",
		"requestBody": map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": schema(in)}}},
		"responses":   responses,
	}
	if !spec.Access.Public {
		op["security"] = []map[string][]string{{"bearer": {}}}
	}
	item := map[string]any{"post": op}
	if spec.Type == call.Query {
		get := map[string]any{
			"operationId": id + "_get",
			"summary":     spec.Name,
			"description": op["description"],
			"parameters": []map[string]any{{
				"name": "input", "in": "query", "description": "the input as JSON",
				"content": map[string]any{"application/json": map[string]any{"schema": schema(in)}},
			}},
			"responses": responses,
		}
		if sec, ok := op["security"]; ok {
			get["security"] = sec
		}
		item["get"] = get
	}
	return item
}
