//go:build unix

package http

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// wsURL is the WebSocket URL of the fixture's node.
func (f *fixture) wsURL() string { return "wss://" + f.node.HostPort + "/v1/ws" }

// dialWS opens /v1/ws over http/1.1 with hdr as extra headers (pairs).
func dialWS(t *testing.T, f *fixture, protos []string, hdr ...string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	for i := 0; i+1 < len(hdr); i += 2 {
		h.Set(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, f.wsURL(), &websocket.DialOptions{HTTPClient: f.client(t, false), HTTPHeader: h, Subprotocols: protos})
	if err == nil {
		ws.SetReadLimit(wsMaxMessage)
		t.Cleanup(func() { _ = ws.CloseNow() })
	}
	return ws, resp, err
}

// mustDialWS is dialWS that fails the test on an error.
func mustDialWS(t *testing.T, f *fixture, protos []string, hdr ...string) *websocket.Conn {
	t.Helper()
	ws, _, err := dialWS(t, f, protos, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// wsSend sends one envelope as a binary message.
func wsSend(t *testing.T, ws *websocket.Conn, typ, id string, payload any) {
	t.Helper()
	frame, err := call.EncodeEnvelope(typ, id, payload)
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(t.Context(), websocket.MessageBinary, frame[4:]); err != nil {
		t.Fatal(err)
	}
}

// wsRecv reads one envelope.
func wsRecv(t *testing.T, ws *websocket.Conn) call.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	typ, msg, err := ws.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	env, err := call.DecodeEnvelope(msg)
	if typ != websocket.MessageBinary || err != nil {
		t.Fatalf("message %v %q: %v", typ, msg, err)
	}
	return env
}

// wsCall sends a call.requested and returns its answers up to the
// terminal one (the first for a query or mutation), as "type payload".
func wsCall(t *testing.T, ws *websocket.Conn, id, op, input string, sub bool) []string {
	t.Helper()
	wsSend(t, ws, call.TypeRequested, id, call.RequestPayload{OperationID: op, Input: json.RawMessage(input)})
	var got []string
	for {
		env := wsRecv(t, ws)
		if env.ID != id {
			t.Fatalf("answer for %q, want %q", env.ID, id)
		}
		got = append(got, env.Type+" "+string(env.Payload))
		if !sub || env.Type != call.TypeResponded {
			return got
		}
	}
}

// wsCloseStatus reads until the server closes and returns its code.
func wsCloseStatus(t *testing.T, ws *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

func TestWSCalls(t *testing.T) {
	f := start(t, Limits{})
	ws := mustDialWS(t, f, nil, "Authorization", "Bearer "+f.user)
	cases := []struct {
		op, input string
		sub       bool
		want      string
	}{
		{"demo/echo", `{"text":"hi"}`, false, `call.responded {"output":{"text":"hi"}}`},
		{"demo/add", `{"a":2,"b":3}`, false, `call.responded {"output":{"sum":5}}`},
		{"demo/whoami", ``, false, `call.responded {"output":{"text":"user"}}`},
		{"demo/ticks", `{"n":3}`, true, `call.responded {"output":{"i":0}}|call.responded {"output":{"i":1}}|call.responded {"output":{"i":2}}|call.completed {}`},
		{"demo/nope", ``, false, `call.error {"code":"NOT_FOUND"`},
		{"demo/hidden", ``, false, `call.error {"code":"NOT_FOUND"`},
		{"demo/secret", ``, false, `call.error {"code":"FORBIDDEN"`},
		{"demo/echo", `{"text":1}`, false, `call.error {"code":"INVALID_INPUT"`},
	}
	for i, c := range cases {
		got := strings.Join(wsCall(t, ws, fmt.Sprint("c", i), c.op, c.input, c.sub), "|")
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %s, want %s", c.op, got, c.want)
		}
	}
	// Per-request tokens work as on alknet/call.
	wsSend(t, ws, call.TypeRequested, "tok", call.RequestPayload{OperationID: "demo/secret", AuthToken: f.admin})
	if env := wsRecv(t, ws); env.Type != call.TypeResponded || !strings.Contains(string(env.Payload), "hush") {
		t.Errorf("auth_token: %s %s", env.Type, env.Payload)
	}
}

func TestWSAuth(t *testing.T) {
	f := start(t, Limits{})
	whoami := func(t *testing.T, ws *websocket.Conn) string {
		t.Helper()
		return strings.Join(wsCall(t, ws, "w", "demo/whoami", "", false), "|")
	}
	t.Run("bearer subprotocol echoed", func(t *testing.T) {
		proto := WSBearerPrefix + f.admin
		ws := mustDialWS(t, f, []string{proto})
		if ws.Subprotocol() != proto {
			t.Fatalf("subprotocol %q", ws.Subprotocol())
		}
		if got := whoami(t, ws); !strings.Contains(got, `"ops"`) {
			t.Fatal(got)
		}
	})
	t.Run("alknet.call chosen beside the token", func(t *testing.T) {
		ws := mustDialWS(t, f, []string{WSSubprotocol, WSBearerPrefix + f.user})
		if ws.Subprotocol() != WSSubprotocol {
			t.Fatalf("subprotocol %q", ws.Subprotocol())
		}
		if got := whoami(t, ws); !strings.Contains(got, `"user"`) {
			t.Fatal(got)
		}
	})
	t.Run("anonymous; no token from the query string", func(t *testing.T) {
		ws, _, err := websocket.Dial(t.Context(), f.wsURL()+"?token="+f.admin+"&access_token="+f.admin, &websocket.DialOptions{HTTPClient: f.client(t, false), Subprotocols: []string{WSSubprotocol}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if got := whoami(t, ws); !strings.Contains(got, `"FORBIDDEN"`) {
			t.Fatal(got)
		}
	})
	refused := []struct {
		name   string
		protos []string
		hdr    []string
		status int
	}{
		{"bad subprotocol token", []string{WSBearerPrefix + "alk_nope"}, nil, http.StatusUnauthorized},
		{"empty subprotocol token", []string{WSSubprotocol, WSBearerPrefix}, nil, http.StatusUnauthorized},
		{"bad header token", nil, []string{"Authorization", "Bearer alk_nope"}, http.StatusUnauthorized},
		{"two tokens", []string{WSBearerPrefix + f.user}, []string{"Authorization", "Bearer " + f.user}, http.StatusBadRequest},
		{"two subprotocol tokens", []string{WSBearerPrefix + f.user, WSBearerPrefix + f.admin}, nil, http.StatusBadRequest},
		{"foreign subprotocol", []string{"graphql-ws"}, nil, http.StatusBadRequest},
		{"cross origin", nil, []string{"Origin", "https://evil.example"}, http.StatusForbidden},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			_, resp, err := dialWS(t, f, c.protos, c.hdr...)
			if err == nil || resp == nil || resp.StatusCode != c.status {
				t.Fatalf("dial: %v %v, want %d", resp, err, c.status)
			}
		})
	}
}

func TestWSOnlyHTTP1(t *testing.T) {
	f := start(t, Limits{})
	for name, c := range map[string]*http.Client{"h2": f.client(t, true), "h3": f.h3Client(t, nil)} {
		st, _, body := do(t, c, "GET", f.url("/v1/ws"), "", "")
		if st != http.StatusUpgradeRequired || errCode(t, body) != call.CodeInvalidInput {
			t.Errorf("%s: %d %s", name, st, body)
		}
	}
}

func TestWSBadInput(t *testing.T) {
	f := start(t, Limits{})
	ws := mustDialWS(t, f, nil)
	// Garbage without a readable id is dropped; one with an id is answered;
	// the connection goes on.
	for _, msg := range []string{`not json`, `{"type":"call.requested"}`, "\xff\xfe"} {
		if err := ws.Write(t.Context(), websocket.MessageBinary, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.Write(t.Context(), websocket.MessageBinary, []byte(`{"type":"call.bogus","id":"b1","payload":{}}`)); err != nil {
		t.Fatal(err)
	}
	if env := wsRecv(t, ws); env.ID != "b1" || env.Type != call.TypeError || !strings.Contains(string(env.Payload), "INVALID_INPUT") {
		t.Fatalf("bad envelope: %+v", env)
	}
	wsSend(t, ws, call.TypeRequested, "b2", json.RawMessage(`"not an object"`))
	if env := wsRecv(t, ws); env.ID != "b2" || !strings.Contains(string(env.Payload), "INVALID_INPUT") {
		t.Fatalf("bad payload: %+v", env)
	}
	if got := wsCall(t, ws, "ok", "demo/add", `{"a":1,"b":1}`, false); got[0] != `call.responded {"output":{"sum":2}}` {
		t.Fatal(got)
	}

	closes := []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
		want websocket.StatusCode
	}{
		{"text", websocket.MessageText, []byte(`{"type":"call.requested","id":"t","payload":{}}`), websocket.StatusUnsupportedData},
		{"empty", websocket.MessageBinary, nil, websocket.StatusProtocolError},
		{"oversized", websocket.MessageBinary, make([]byte, wsMaxMessage+1), websocket.StatusMessageTooBig},
	}
	for _, c := range closes {
		t.Run(c.name, func(t *testing.T) {
			ws := mustDialWS(t, f, nil)
			if err := ws.Write(t.Context(), c.typ, c.msg); err != nil {
				t.Fatal(err)
			}
			if got := wsCloseStatus(t, ws); got != c.want {
				t.Fatalf("closed with %v, want %v", got, c.want)
			}
		})
	}
	// The server keeps serving.
	if got := wsCall(t, mustDialWS(t, f, nil), "after", "demo/echo", `{"text":"still"}`, false); got[0] != `call.responded {"output":{"text":"still"}}` {
		t.Fatal(got)
	}
}

func TestWSDisconnectAborts(t *testing.T) {
	f := start(t, Limits{})
	ws := mustDialWS(t, f, nil)
	wsSend(t, ws, call.TypeRequested, "f", call.RequestPayload{OperationID: "demo/forever"})
	if env := wsRecv(t, ws); env.Type != call.TypeResponded {
		t.Fatalf("first tick: %+v", env)
	}
	_ = ws.CloseNow()
	select {
	case <-f.aborted:
	case <-time.After(10 * time.Second):
		t.Fatal("the subscription did not end with its client")
	}
}

func TestWSOutlivesHTTPTimeouts(t *testing.T) {
	short := 500 * time.Millisecond
	f := start(t, Limits{ReadTimeout: short, WriteTimeout: short, IdleTimeout: short})
	ws := mustDialWS(t, f, nil)
	time.Sleep(2 * short)
	if got := wsCall(t, ws, "late", "demo/ticks", `{"n":2}`, true); len(got) != 3 || got[2] != "call.completed {}" {
		t.Fatal(got)
	}
}

func TestWSShutdown(t *testing.T) {
	f := start(t, Limits{})
	ws := mustDialWS(t, f, nil)
	wsCall(t, ws, "x", "demo/echo", `{}`, false)
	_ = f.srv.Close()
	if got := wsCloseStatus(t, ws); got != websocket.StatusGoingAway {
		t.Fatalf("closed with %v, want going away", got)
	}
}

// wsClientConn is the dialing side of a WebSocket as a single-stream
// core.Conn, for call.NewClient.
type wsClientConn struct {
	st     *wsStream
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *wsClientConn) ALPN() string      { return ALPNHTTP1 }
func (c *wsClientConn) Peer() core.Peer   { return core.Peer{} }
func (c *wsClientConn) MultiStream() bool { return false }
func (c *wsClientConn) AcceptStream(context.Context) (core.Stream, error) {
	return nil, core.ErrSingleStream
}
func (c *wsClientConn) OpenStream(context.Context) (core.Stream, error) { return c.st, nil }
func (c *wsClientConn) Context() context.Context                        { return c.ctx }
func (c *wsClientConn) Logger() *slog.Logger                            { return slog.New(slog.DiscardHandler) }
func (c *wsClientConn) CloseWithError(core.ErrorCode, string) error {
	c.cancel()
	return c.st.Close()
}

// TestWSServerCallsClient attaches a WebSocket client as a worker of a
// head: the head calls the client's operations over the same WebSocket.
func TestWSServerCallsClient(t *testing.T) {
	peers := call.NewPeers(call.RoundRobin, slog.New(slog.DiscardHandler))
	reg := testRegistry(t, nil)
	if err := call.RegisterBuiltins(reg, call.Info{NodeID: "head"}, peers); err != nil {
		t.Fatal(err)
	}
	worker, whash, _ := core.NewToken()
	router, rhash, _ := core.NewToken()
	dir, err := core.NewDirectory(nil, []core.TokenEntry{
		{Name: "worker", Hash: whash, Scopes: []string{call.WorkerScope}},
		{Name: "router", Hash: rhash, Scopes: []string{call.RouteScope}},
	})
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	f := &fixture{}
	f.srv, err = New(Config{Registry: reg, Peers: peers, Identities: live, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.srv.Close() })
	f.node = coretest.Start(t, core.Config{Identities: live, Logger: slog.New(slog.DiscardHandler)}, f.srv)

	wreg := call.NewRegistry()
	if err := call.RegisterBuiltins(wreg, call.Info{NodeID: "worker"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := call.Register(wreg, call.Spec{Name: "w/hello", Access: core.AccessControl{Public: true}},
		func(_ context.Context, _ *call.Request, in echoIn) (echoOut, error) {
			return echoOut{"hello " + in.Text}, nil
		}); err != nil {
		t.Fatal(err)
	}
	ws := mustDialWS(t, f, []string{WSSubprotocol, WSBearerPrefix + worker})
	ctx, cancel := context.WithCancel(context.Background())
	conn := &wsClientConn{st: &wsStream{ws: ws, writeTimeout: 10 * time.Second}, ctx: ctx, cancel: cancel}
	client, err := call.NewClient(t.Context(), conn, call.Options{Registry: wreg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// The client calls the head too, on the same WebSocket.
	var sum addOut
	if err := client.Call(t.Context(), "demo/add", addIn{4, 5}, &sum); err != nil || sum.Sum != 9 {
		t.Fatalf("client call: %v %v", sum, err)
	}
	c := f.client(t, true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _, body := do(t, c, "POST", f.url("/v1/ops/w/hello"), router, `{"text":"head"}`, peerHeader, "worker")
		if st == http.StatusOK {
			if !strings.Contains(body, `"hello head"`) {
				t.Fatal(body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker never attached: %d %s", st, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWSBrowser loads a page in headless Chromium whose script opens the
// WebSocket with the bearer subprotocol, makes a call and a subscription,
// and writes what it got into the DOM. Chromium does not take the node's
// Ed25519 certificate, so a second endpoint serves the same server with
// an ECDSA web certificate (see TestH3Chromium).
func TestWSBrowser(t *testing.T) {
	bin := coretest.RequireTool(t, "chromium")
	f := start(t, Limits{})
	// The page's load event, after which Chromium dumps the DOM, waits for
	// its /test/hold frame, which the page releases once its WebSocket has
	// closed.
	release := make(chan struct{})
	var once sync.Once
	pages := http.NewServeMux()
	pages.Handle("/test/", http.StripPrefix("/test/", http.FileServer(http.Dir("testdata/ws"))))
	pages.HandleFunc("/test/hold", func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	})
	pages.HandleFunc("POST /test/release", func(http.ResponseWriter, *http.Request) { once.Do(func() { close(release) }) })
	if err := f.srv.Mount("/test/", pages); err != nil {
		t.Fatal(err)
	}
	wc, pin := webCert(t)
	web := coretest.Start(t, core.Config{Identities: f.node.Identities, WebCert: wc, StandardALPNs: []string{ALPNH3, ALPNH2, ALPNHTTP1}, Logger: slog.New(slog.DiscardHandler)}, f.srv)
	home := t.TempDir()
	dom := runBounded(t, 60*time.Second, []string{"HOME=" + home}, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--disable-extensions", "--user-data-dir="+filepath.Join(home, "profile"),
		"--ignore-certificate-errors-spki-list="+pin,
		"--dump-dom", "https://"+web.HostPort+"/test/index.html#"+f.admin)
	// The script writes its results into <pre id="out">, the last answer
	// being the close it asked for.
	want := "<pre id=\"out\">protocol echoed\n" + `whoami {"text":"ops"}` + "\n" + `ticks {"i":0} {"i":1} {"i":2} completed` + "\ndone\nclosed 1000</pre>"
	if !strings.Contains(dom, want) {
		t.Fatalf("page lacks %q:\n%s", want, dom)
	}
	// Chromium loads the page over h2 and opens the WebSocket on a
	// connection of its own: HTTP/1.1, there being no RFC 8441 on h2.
	if conns := connsByALPN(t, f); conns["http/1.1"] != 1 {
		t.Errorf("connections by ALPN %v, want one http/1.1 (the WebSocket)", conns)
	}
}

// TestWSRevoked checks that a WebSocket whose token a reload removes is
// closed, as core closes its connections, while one with another identity
// goes on.
func TestWSRevoked(t *testing.T) {
	f := start(t, Limits{})
	user := mustDialWS(t, f, []string{WSSubprotocol, WSBearerPrefix + f.user})
	admin := mustDialWS(t, f, nil, "Authorization", "Bearer "+f.admin)
	wsCall(t, user, "before", "demo/echo", `{"text":"x"}`, false)
	// The same directory without the user's token.
	old := f.node.Identities.Load()
	var tokens []core.TokenEntry
	for _, e := range old.Tokens() {
		if e.Name != "user" {
			tokens = append(tokens, e)
		}
	}
	dir, err := core.NewDirectory(old.Peers(), tokens)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	f.node.Identities.Store(dir)
	if got := wsCloseStatus(t, user); got != websocket.StatusPolicyViolation {
		t.Fatalf("closed with %v, want policy violation", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closed %v after the reload, want within 1 s", d)
	}
	if got := wsCall(t, admin, "after", "demo/echo", `{"text":"x"}`, false); len(got) != 1 || !strings.HasPrefix(got[0], call.TypeResponded) {
		t.Fatalf("the admin's WebSocket after the reload: %v", got)
	}
}
