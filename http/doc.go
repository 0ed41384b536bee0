// Package http will serve one http.Handler on h3, h2, http/1.1 and
// alknet/http: a REST gateway and OpenAPI document over the call registry, an
// MCP endpoint, WebSocket calls, metrics and a dashboard.
//
// The module is filled by its own issue; until then it holds no code.
package http
