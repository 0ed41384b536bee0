// Package http serves one http.Handler on h3, h2, http/1.1 and alknet/http:
// the call registry as a REST gateway (/v1/ops, /v1/call, /v1/batch, with
// Server-Sent Events for subscriptions), an OpenAPI 3.1 document, MCP
// tools at /mcp, the native call protocol over WebSocket at /v1/ws, and
// /healthz, /readyz, /metrics and an optional status page at /. Every front door
// dispatches through call.Dispatcher: the same registry, access control
// and stats as alknet/call.
//
// A [Server] is a core.Handler. Other modules add routes with
// [Server.Mount]; their handlers read the caller with [Caller].
package http
