package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// CallRequest is the body of POST /v1/call and one entry of /v1/batch.
type CallRequest struct {
	Operation string          `json:"operation"`
	Input     json.RawMessage `json:"input,omitempty"`
}

// BatchRequest is the body of POST /v1/batch.
type BatchRequest struct {
	Calls []CallRequest `json:"calls"`
}

// BatchResult is one call's answer in a /v1/batch response: its output, or
// its error.
type BatchResult struct {
	Output json.RawMessage `json:"output,omitempty"`
	Error  *call.Error     `json:"error,omitempty"`
}

// BatchResponse is the body of a /v1/batch answer, results in call order.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// routes registers the server's own paths.
func (s *Server) routes() error {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("POST /v1/ops/{name...}", s.serveOp)
	s.mux.HandleFunc("GET /v1/ops/{name...}", s.serveOp)
	s.mux.HandleFunc("POST /v1/call", s.serveCall)
	s.mux.HandleFunc("POST /v1/batch", s.serveBatch)
	ws, err := s.wsHandler()
	if err != nil {
		return err
	}
	s.mux.Handle("GET /v1/ws", ws)
	s.mux.HandleFunc("GET /openapi.json", s.serveOpenAPI)
	s.mux.Handle("GET /metrics", s.admin(s.metrics.handler(), AdminScope, MetricsScope))
	s.mux.Handle("/mcp", s.mcpHandler())
	s.routeDashboard()
	s.mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, call.Errorf(call.CodeNotFound, "no such endpoint"))
	})
	return nil
}

// readyz answers 200 while the server takes requests.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	select {
	case <-s.conns.done:
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "shutting down\n")
	default:
		_, _ = io.WriteString(w, "ok\n")
	}
}

// admin lets callers holding one of scopes through and, with
// Config.TrustLoopback, any caller on loopback that the node's forwarding
// did not bring.
func (s *Server) admin(h http.Handler, scopes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller := Caller(r.Context())
		switch {
		case slices.ContainsFunc(scopes, caller.HasScope):
		case s.trustedLocal(connOf(r.Context()).peer, r):
		case caller == nil:
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeJSON(w, http.StatusUnauthorized, call.Errorf(call.CodeForbidden, "authentication required"))
			return
		default:
			writeJSON(w, http.StatusForbidden, call.Errorf(call.CodeForbidden, "needs the %s scope", scopes[0]))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// opsPrefix is the path of the operations' REST routes.
const opsPrefix = "/v1/ops/"

// route serves a request: a POST to an operation (the REST calls) goes to
// its handler directly, as the mux would route it, without the mux's
// matching; everything else through the mux. Only a clean path with no
// escapes is routed directly, so that the operation's name is the same
// (the mux's {name...} is the unescaped rest of the path) and a path the
// mux would redirect or refuse still gets the mux's answer.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if r.Method == http.MethodPost && len(p) > len(opsPrefix) && strings.HasPrefix(p, opsPrefix) &&
		r.URL.RawPath == "" && path.Clean(p) == p && !s.muxOnly.Load() {
		s.serveOpNamed(w, r, p[len(opsPrefix):])
		return
	}
	s.mux.ServeHTTP(w, r)
}

// serveOp answers /v1/ops/<service>/<op>: the input is the body (POST) or
// the input query parameter (GET, queries only).
func (s *Server) serveOp(w http.ResponseWriter, r *http.Request) {
	s.serveOpNamed(w, r, r.PathValue("name"))
}

// serveOpNamed is serveOp of the operation name.
func (s *Server) serveOpNamed(w http.ResponseWriter, r *http.Request, name string) {
	var input json.RawMessage
	if r.Method == http.MethodGet {
		if v := r.URL.Query().Get("input"); v != "" {
			input = json.RawMessage(v)
		}
	} else {
		b, ok := readBody(w, r)
		if !ok {
			return
		}
		input = b
	}
	s.invoke(w, r, name, input)
}

// serveCall answers POST /v1/call {"operation","input"}.
func (s *Server) serveCall(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	req, err := DecodeCall(b)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, err)
		return
	}
	s.invoke(w, r, req.Operation, req.Input)
}

// serveBatch answers POST /v1/batch: the calls run concurrently, the
// results come in call order, and the status is 200 whatever they are.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request) {
	b, ok := readBody(w, r)
	if !ok {
		return
	}
	req, cerr := DecodeBatch(b, s.lim.MaxBatch)
	if cerr != nil {
		writeJSON(w, http.StatusBadRequest, cerr)
		return
	}
	caller := Caller(r.Context())
	res := BatchResponse{Results: make([]BatchResult, len(req.Calls))}
	var wg sync.WaitGroup
	for i, c := range req.Calls {
		wg.Go(func() {
			out, err := s.runOnce(r.Context(), caller, c.Operation, c.Input)
			if err != nil {
				res.Results[i].Error = err
				return
			}
			res.Results[i].Output = out
		})
	}
	wg.Wait()
	writeJSON(w, http.StatusOK, res)
}

// DecodeCall decodes a /v1/call body. Errors are INVALID_INPUT call errors.
func DecodeCall(b []byte) (CallRequest, *call.Error) {
	var req CallRequest
	if err := decodeStrict(b, &req); err != nil {
		return req, err
	}
	if req.Operation == "" {
		return req, call.Errorf(call.CodeInvalidInput, `"operation" is required`)
	}
	return req, nil
}

// DecodeBatch decodes a /v1/batch body of at most max calls. Errors are
// INVALID_INPUT call errors.
func DecodeBatch(b []byte, max int) (BatchRequest, *call.Error) {
	var req BatchRequest
	if err := decodeStrict(b, &req); err != nil {
		return req, err
	}
	switch {
	case req.Calls == nil:
		return req, call.Errorf(call.CodeInvalidInput, `"calls" is required`)
	case len(req.Calls) > max:
		return req, call.Errorf(call.CodeInvalidInput, "%d calls; at most %d in one batch", len(req.Calls), max)
	}
	for i, c := range req.Calls {
		if c.Operation == "" {
			return req, call.Errorf(call.CodeInvalidInput, `calls[%d]: "operation" is required`, i)
		}
	}
	return req, nil
}

// decodeStrict decodes one JSON object with no trailing data.
func decodeStrict(b []byte, v any) *call.Error {
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return call.Errorf(call.CodeInvalidInput, "body is not the expected JSON: %s", jsonReason(err))
	}
	if d.More() {
		return call.Errorf(call.CodeInvalidInput, "body has data after the JSON value")
	}
	return nil
}

// jsonReason says what is wrong with a body without echoing it.
func jsonReason(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s: want %s", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end"
	}
	return "invalid JSON"
}

// readBody reads the request body; it answers 413 or 400 itself.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeJSON(w, http.StatusRequestEntityTooLarge, call.Errorf(call.CodeInvalidInput, "body larger than %d bytes", tooBig.Limit))
		return nil, false
	case err != nil:
		writeJSON(w, http.StatusBadRequest, call.Errorf(call.CodeInvalidInput, "reading the body failed"))
		return nil, false
	}
	if len(bytes.TrimSpace(b)) > 0 && !json.Valid(b) {
		writeJSON(w, http.StatusBadRequest, call.Errorf(call.CodeInvalidInput, "body is not JSON"))
		return nil, false
	}
	return b, true
}

// peerHeader routes a call to one worker of a head.
const peerHeader = "X-Alknet-Peer"

// invoke runs one operation for the request and writes its answer: JSON,
// or Server-Sent Events when the client accepts them.
func (s *Server) invoke(w http.ResponseWriter, r *http.Request, name string, input json.RawMessage) {
	caller := Caller(r.Context())
	sse := acceptsSSE(r)
	if peer := peerOf(r); peer != "" {
		name, input = routed(peer, name, input, sse)
	}
	spec, err := s.disp.Lookup(caller, name)
	if err != nil {
		s.writeCallError(w, caller, nil, err)
		return
	}
	switch {
	case r.Method == http.MethodGet && spec.Type != call.Query:
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, call.Errorf(call.CodeInvalidOperationType, "%s is a %s: use POST", spec.Name, spec.Type))
		return
	case sse:
		s.stream(w, r, caller, spec, input)
		return
	case spec.Type == call.Subscription:
		writeJSON(w, http.StatusBadRequest, call.Errorf(call.CodeInvalidOperationType, "%s is a subscription: send Accept: text/event-stream", spec.Name))
		return
	}
	out, cerr := s.runQuery(r.Context(), caller, name, input)
	if cerr != nil {
		s.writeCallError(w, caller, &spec, cerr)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// peerOf returns the worker a request names, by header or ?peer=.
func peerOf(r *http.Request) string {
	if p := r.Header.Get(peerHeader); p != "" {
		return p
	}
	if r.URL.RawQuery == "" {
		return "" // no query to parse
	}
	return r.URL.Query().Get("peer")
}

// routed rewrites a call to go through the head's peers/call or
// peers/subscribe, which check the route scope and forward the caller.
func routed(peer, name string, input json.RawMessage, sse bool) (string, json.RawMessage) {
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("null")
	}
	b, _ := json.Marshal(struct {
		Peer        string          `json:"peer"`
		OperationID string          `json:"operationId"`
		Input       json.RawMessage `json:"input"`
	}{peer, strings.TrimPrefix(name, "/"), input})
	if sse {
		return "peers/subscribe", b
	}
	return "peers/call", b
}

// acceptsSSE reports whether the client asked for an event stream.
func acceptsSSE(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/event-stream") {
			return true
		}
	}
	return false
}

// runOnce runs a query or mutation and returns its one output.
func (s *Server) runOnce(ctx context.Context, caller *core.Identity, name string, input json.RawMessage) (json.RawMessage, *call.Error) {
	spec, err := s.disp.Lookup(caller, name)
	if err != nil {
		return nil, asCallError(err)
	}
	if spec.Type == call.Subscription {
		return nil, call.Errorf(call.CodeInvalidOperationType, "%s is a subscription", spec.Name)
	}
	return s.runQuery(ctx, caller, name, input)
}

// runQuery is runOnce for an operation the caller has looked up already
// and found not to be a subscription (an operation never changes once
// registered). The dispatcher checks, again, that caller may call it.
func (s *Server) runQuery(ctx context.Context, caller *core.Identity, name string, input json.RawMessage) (json.RawMessage, *call.Error) {
	var (
		mu  sync.Mutex
		out json.RawMessage
	)
	err := s.disp.Run(ctx, caller, name, input, func(b json.RawMessage) error {
		mu.Lock()
		defer mu.Unlock()
		if out != nil {
			return errors.New("http: more than one output")
		}
		out = b
		return nil
	})
	if err != nil {
		if revoked(ctx) {
			return nil, errRevokedCall()
		}
		return nil, asCallError(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return out, nil
}

// stream runs a call as Server-Sent Events: one data line per output, then
// "event: completed" or "event: error". An error before the first event is
// answered as JSON with its status instead. A client that goes away ends
// the call at once; a caller revoked meanwhile gets a FORBIDDEN error
// event and the end of the stream.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, caller *core.Identity, spec call.Spec, input json.RawMessage) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream may last
	var (
		mu      sync.Mutex
		started bool
		done    bool
	)
	begin := func() {
		if !started {
			started = true
			h := w.Header()
			h.Set("Content-Type", "text/event-stream")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
		}
	}
	err := s.disp.Run(r.Context(), caller, spec.Name, input, func(b json.RawMessage) error {
		mu.Lock()
		defer mu.Unlock()
		if done {
			return errors.New("http: stream ended")
		}
		begin()
		if err := writeEvent(w, "", b); err != nil {
			return err
		}
		return rc.Flush()
	})
	mu.Lock()
	defer mu.Unlock()
	done = true
	switch {
	case revoked(r.Context()):
		err = errRevokedCall()
	case r.Context().Err() != nil:
		return // the client is gone
	}
	if err != nil && !started {
		s.writeCallError(w, caller, &spec, asCallError(err))
		return
	}
	begin()
	if err != nil {
		b, _ := json.Marshal(asCallError(err))
		_ = writeEvent(w, "error", b)
	} else {
		_ = writeEvent(w, "completed", json.RawMessage("{}"))
	}
	_ = rc.Flush()
}

// writeEvent writes one SSE event; data is one line of compact JSON.
func writeEvent(w io.Writer, event string, data json.RawMessage) error {
	var buf bytes.Buffer
	if event != "" {
		buf.WriteString("event: " + event + "\n")
	}
	buf.WriteString("data: ")
	if err := json.Compact(&buf, data); err != nil {
		return err
	}
	buf.WriteString("\n\n")
	_, err := w.Write(buf.Bytes())
	return err
}

// asCallError returns err as a call error; anything else is INTERNAL.
func asCallError(err error) *call.Error {
	var ce *call.Error
	if errors.As(err, &ce) {
		return ce
	}
	return call.Errorf(call.CodeInternal, "internal error")
}

// Status returns the HTTP status of a call error: caller tells 401 from
// 403 for FORBIDDEN, spec (if known) gives declared codes their status.
func Status(e *call.Error, caller *core.Identity, spec *call.Spec) int {
	switch e.Code {
	case call.CodeNotFound:
		return http.StatusNotFound
	case call.CodeForbidden:
		if caller == nil {
			return http.StatusUnauthorized
		}
		return http.StatusForbidden
	case call.CodeInvalidInput:
		return http.StatusUnprocessableEntity
	case call.CodeInvalidOperationType:
		return http.StatusBadRequest
	case call.CodeTimeout:
		return http.StatusGatewayTimeout
	case call.CodeUnavailable:
		return http.StatusServiceUnavailable
	case call.CodeInternal:
		return http.StatusInternalServerError
	}
	if spec != nil {
		for _, d := range spec.Errors {
			if d.Code == e.Code && d.HTTPStatus != 0 {
				return d.HTTPStatus
			}
		}
	}
	if n, ok := strings.CutPrefix(string(e.Code), "HTTP_"); ok {
		if st, err := strconv.Atoi(n); err == nil && st >= 400 && st <= 599 {
			return st
		}
	}
	return http.StatusInternalServerError
}

// writeCallError answers with a call error and its status.
func (s *Server) writeCallError(w http.ResponseWriter, caller *core.Identity, spec *call.Spec, err error) {
	e := asCallError(err)
	st := Status(e, caller, spec)
	switch st {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", "Bearer")
	case http.StatusServiceUnavailable, http.StatusTooManyRequests:
		w.Header().Set("Retry-After", retryAfter(e))
	}
	writeJSON(w, st, e)
}

// retryAfter is the error's details.retry_after in seconds, default 1.
func retryAfter(e *call.Error) string {
	var d struct {
		RetryAfter json.Number `json:"retry_after"`
	}
	if len(e.Details) > 0 && json.Unmarshal(e.Details, &d) == nil {
		if n, err := d.RetryAfter.Int64(); err == nil && n > 0 {
			return strconv.FormatInt(n, 10)
		}
	}
	return "1"
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"INTERNAL","message":"encode answer","retryable":false}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
