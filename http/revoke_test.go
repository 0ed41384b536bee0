package http

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/core/netutil"
)

// dirEditor changes a fixture's directory; its lock keeps parallel
// subtests from undoing each other's changes.
type dirEditor struct {
	mu sync.Mutex
	f  *fixture
}

func (d *dirEditor) edit(t *testing.T, change func(peers []core.PeerEntry, tokens []core.TokenEntry) ([]core.PeerEntry, []core.TokenEntry)) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.f.node.Identities.Load()
	dir, err := core.NewDirectory(change(old.Peers(), old.Tokens()))
	if err != nil {
		t.Fatal(err)
	}
	d.f.node.Identities.Store(dir)
}

// addToken adds a token with no scopes expiring at expires (zero: never)
// and returns it.
func (d *dirEditor) addToken(t *testing.T, name string, expires time.Time) string {
	t.Helper()
	tok, hash, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	d.edit(t, func(p []core.PeerEntry, ts []core.TokenEntry) ([]core.PeerEntry, []core.TokenEntry) {
		return p, append(ts, core.TokenEntry{Name: name, Hash: hash, Expires: expires})
	})
	return tok
}

// addPeer adds a peer and returns its key.
func (d *dirEditor) addPeer(t *testing.T, name string) ed25519.PrivateKey {
	t.Helper()
	key := coretest.NewKey(t)
	d.edit(t, func(p []core.PeerEntry, ts []core.TokenEntry) ([]core.PeerEntry, []core.TokenEntry) {
		return append(p, core.PeerEntry{ID: name, NodeIDs: []core.NodeID{coretest.NodeID(key)}}), ts
	})
	return key
}

// disable disables the peer or token named name.
func (d *dirEditor) disable(t *testing.T, name string) {
	t.Helper()
	d.edit(t, func(p []core.PeerEntry, ts []core.TokenEntry) ([]core.PeerEntry, []core.TokenEntry) {
		for i := range p {
			if p[i].ID == name {
				p[i].Disabled = true
			}
		}
		for i := range ts {
			if ts[i].Name == name {
				ts[i].Disabled = true
			}
		}
		return p, ts
	})
}

// held registers op, a subscription (or, unary, a mutation) that answers
// once, closes started, and holds on until its context ends.
func held(t *testing.T, reg *call.Registry, op string, unary bool) (started <-chan struct{}) {
	t.Helper()
	ch := make(chan struct{})
	spec := call.Spec{Name: op, Access: core.AccessControl{Public: true}}
	var err error
	if unary {
		spec.Type = call.Mutation
		err = call.Register(reg, spec, func(ctx context.Context, _ *call.Request, _ none) (none, error) {
			close(ch)
			<-ctx.Done()
			return none{}, ctx.Err()
		})
	} else {
		err = call.RegisterStream(reg, spec, func(ctx context.Context, _ *call.Request, _ none, send func(tick) error) error {
			if err := send(tick{0}); err != nil {
				return err
			}
			close(ch)
			<-ctx.Done()
			return ctx.Err()
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// frontDoor opens a long response to op as the caller token (or, without
// one, the connection's key) and returns how it ended once it did.
type frontDoor struct {
	name  string
	unary bool // op is a mutation, not a subscription
	open  func(t *testing.T, f *fixture, op, token string) <-chan string
	// want are in how the response ended when the server ended it.
	want []string
}

// sseDoor posts to op asking for an event stream and reports the rest of
// the stream after the first event.
func sseDoor(client func(t *testing.T, f *fixture) *http.Client) func(*testing.T, *fixture, string, string) <-chan string {
	return func(t *testing.T, f *fixture, op, token string) <-chan string {
		req, err := http.NewRequestWithContext(t.Context(), "POST", f.url("/v1/ops/"+op), strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "text/event-stream")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		c := client(t, f)
		c.Timeout = 0 // the test's deadline bounds it
		ended := make(chan string, 1)
		go func() {
			resp, err := c.Do(req)
			if err != nil {
				ended <- "request: " + err.Error()
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(bufio.NewReader(resp.Body))
			ended <- fmt.Sprintf("status %d, %v: %s", resp.StatusCode, err, b)
		}()
		return ended
	}
}

// sseRevoked is in an event stream that a revocation ended.
var sseRevoked = []string{"status 200", "data: {\"i\":0}\n\nevent: error\ndata: {\"code\":\"FORBIDDEN\",\"message\":\"credentials revoked\"", "<nil>"}

// revocationDoors are the long responses of every front door.
func revocationDoors() []frontDoor {
	h2 := func(t *testing.T, f *fixture) *http.Client { return f.client(t, true) }
	h3 := func(t *testing.T, f *fixture) *http.Client { return f.h3Client(t, nil) }
	// A token on an alknet/http connection whose own key stays valid.
	alknetHTTP := func(t *testing.T, f *fixture) *http.Client { return f.h3Client(t, f.peerKey) }
	return []frontDoor{
		{name: "sse/h2", open: sseDoor(h2), want: sseRevoked},
		{name: "sse/h3", open: sseDoor(h3), want: sseRevoked},
		{name: "sse/alknet-http", open: sseDoor(alknetHTTP), want: sseRevoked},
		{name: "call/h3", unary: true, open: sseDoor(h3), want: []string{"status 403", `"code":"FORBIDDEN"`, "revoked"}},
		{name: "mcp", open: func(t *testing.T, f *fixture, op, token string) <-chan string {
			s := mcpSession(t, f, token)
			ended := make(chan string, 1)
			go func() {
				res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: ToolName(op), Arguments: map[string]any{"timeout_ms": MaxMCPTimeout.Milliseconds(), "max_events": MaxMCPMaxEvents}})
				if err != nil {
					ended <- "call: " + err.Error()
					return
				}
				b, _ := json.Marshal(res)
				ended <- string(b)
			}()
			return ended
		}, want: []string{`"isError":true`, `"code":"FORBIDDEN"`, "revoked"}},
		{name: "ws", open: func(t *testing.T, f *fixture, op, token string) <-chan string {
			return wsDoor(t, mustDialWS(t, f, []string{WSSubprotocol, WSBearerPrefix + token}), op, "")
		}, want: []string{"close StatusPolicyViolation"}},
		{name: "ws/call-token", open: func(t *testing.T, f *fixture, op, token string) <-chan string {
			return wsDoor(t, mustDialWS(t, f, nil), op, token)
		}, want: []string{"close StatusPolicyViolation"}},
	}
}

// wsDoor calls op on ws (with token in the call, if any) and reports how
// the WebSocket closed after the first answer.
func wsDoor(t *testing.T, ws *websocket.Conn, op, token string) <-chan string {
	ended := make(chan string, 1)
	wsSend(t, ws, call.TypeRequested, "1", call.RequestPayload{OperationID: op, Input: json.RawMessage("{}"), AuthToken: token})
	go func() {
		var got []string
		for {
			_, msg, err := ws.Read(t.Context())
			if err != nil {
				ended <- fmt.Sprintf("%v after %q", "close "+websocket.CloseStatus(err).String(), got)
				return
			}
			got = append(got, string(msg))
		}
	}()
	return ended
}

// TestRevocationEndsLongResponses checks that a long response of every
// front door ends within a second of its caller's token being disabled
// by a directory swap, or expiring, while its handler still runs.
func TestRevocationEndsLongResponses(t *testing.T) {
	f := start(t, Limits{Rate: -1})
	dir := &dirEditor{f: f}
	type mode struct {
		name    string
		expires time.Duration // the token expires that long after it is made; 0: disabled instead
	}
	modes := []mode{{"disabled", 0}, {"expired", time.Second}}
	for _, door := range revocationDoors() {
		for _, m := range modes {
			name := strings.NewReplacer("/", "-").Replace(door.name) + "-" + m.name
			t.Run(door.name+"/"+m.name, func(t *testing.T) {
				t.Parallel()
				op := "test/" + name
				started := held(t, f.reg, op, door.unary)
				var expires time.Time
				if m.expires > 0 {
					expires = time.Now().Add(m.expires)
				}
				token := dir.addToken(t, name, expires)
				ended := door.open(t, f, op, token)
				waitStarted(t, started, ended)
				var revokedAt time.Time
				if m.expires > 0 {
					revokedAt = expires
					if time.Now().After(expires) {
						t.Fatalf("the response took over %v to start", m.expires)
					}
				} else {
					revokedAt = time.Now()
					dir.disable(t, name)
				}
				checkEnded(t, ended, revokedAt, door.want...)
			})
		}
	}
	// A peer's key: the connection is core's to close (it does), the
	// request is the server's; whichever is first ends the response.
	t.Run("alknet-http/peer-key/disabled", func(t *testing.T) {
		t.Parallel()
		op := "test/peer-key"
		started := held(t, f.reg, op, false)
		key := dir.addPeer(t, "desk")
		ended := sseDoor(func(t *testing.T, f *fixture) *http.Client { return f.h3Client(t, key) })(t, f, op, "")
		waitStarted(t, started, ended)
		revokedAt := time.Now()
		dir.disable(t, "desk")
		checkEnded(t, ended, revokedAt)
	})
}

// waitStarted waits for a long response's handler to run.
func waitStarted(t *testing.T, started <-chan struct{}, ended <-chan string) {
	t.Helper()
	select {
	case <-started:
	case how := <-ended:
		t.Fatalf("ended before the handler ran: %s", how)
	case <-time.After(10 * time.Second):
		t.Fatal("the handler never ran")
	}
}

// checkEnded waits for a response to end within a second of revokedAt and
// checks that how it ended says want.
func checkEnded(t *testing.T, ended <-chan string, revokedAt time.Time, want ...string) {
	t.Helper()
	select {
	case how := <-ended:
		if d := time.Since(revokedAt); d > time.Second {
			t.Errorf("ended %v after the revocation, want within 1 s", d)
		}
		for _, w := range want {
			if !strings.Contains(how, w) {
				t.Errorf("ended with %s, want %s in it", how, w)
			}
		}
	case <-time.After(time.Until(revokedAt.Add(time.Second))):
		t.Fatal("still open 1 s after the revocation")
	}
}

// newTestRevoker returns a revoker over a live directory holding one
// token, and the token's identity.
func newTestRevoker(t *testing.T) (*revoker, *core.LiveDirectory, core.Identity) {
	t.Helper()
	tok, hash, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := core.NewDirectory(nil, []core.TokenEntry{{Name: "t", Hash: hash}})
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	id, _ := live.ByToken(tok)
	return &revoker{ids: live, logger: slog.New(slog.DiscardHandler), w: netutil.Watcher{Interval: revalidateInterval}}, live, id
}

// TestRevokerStops checks that the revoker fires only for watches still
// on, and that its goroutine runs only while something is watched.
func TestRevokerStops(t *testing.T) {
	r, live, id := newTestRevoker(t)
	fired := make(chan struct{})
	stop := r.watch(&id, "request", func() { close(fired) })
	r.watch(&id, "request", func() { t.Error("a stopped watch fired") })()
	r.watch(nil, "request", func() { t.Error("an anonymous caller was revoked") })()
	empty, err := core.NewDirectory(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	live.Store(empty)
	select {
	case <-fired:
	case <-time.After(2 * time.Second):
		t.Fatal("not revoked")
	}
	stop()
	if n := r.w.Watching(); n != 0 {
		t.Fatalf("%d watches left with nothing watched", n)
	}
}

// TestRevocable: a request of an identified caller is watched from its
// start and revoked; an anonymous one gets its context as it is, nothing
// to watch.
func TestRevocable(t *testing.T) {
	r, live, id := newTestRevoker(t)

	anon, release := r.revocable(t.Context(), nil)
	if anon != t.Context() || r.w.Watching() != 0 {
		t.Error("an anonymous request got a revocable context or a watch")
	}
	release()

	ctx, release := r.revocable(t.Context(), &id)
	defer release()
	if n := r.w.Watching(); n != 1 {
		t.Fatalf("%d watches for a request", n)
	}
	empty, err := core.NewDirectory(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	live.Store(empty)
	select {
	case <-ctx.Done():
		if !revoked(ctx) {
			t.Fatalf("ended by %v, not the revocation", context.Cause(ctx))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request was not revoked")
	}
	release()
	waitWatching(t, r, 0) // the keep-alive goes once requests stop coming
}

// waitWatching waits until r watches n callers (the keep-alive included).
func waitWatching(t *testing.T, r *revoker, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * revalidateInterval)
	for r.w.Watching() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d watches, want %d", r.w.Watching(), n)
		}
		time.Sleep(revalidateInterval / 10)
	}
}

// TestRevokerKeepsLoop: requests one after another keep the watcher's
// goroutine (the keep-alive watch stands between them) instead of starting
// and stopping it with each; it stops once requests stop coming, and at
// once when the server closes.
func TestRevokerKeepsLoop(t *testing.T) {
	r, _, id := newTestRevoker(t)
	for range 3 {
		_, release := r.revocable(t.Context(), &id)
		release()
		if n := r.w.Watching(); n != 1 {
			t.Fatalf("%d watches between requests, want the keep-alive", n)
		}
	}
	waitWatching(t, r, 0)
	_, release := r.revocable(t.Context(), &id)
	release()
	if n := r.w.Watching(); n != 1 {
		t.Fatalf("%d watches after a new request, want the keep-alive again", n)
	}
	r.close()
	if n := r.w.Watching(); n != 0 {
		t.Fatalf("%d watches after close", n)
	}
	_, release = r.revocable(t.Context(), &id)
	if n := r.w.Watching(); n != 1 {
		t.Fatalf("%d watches for a request once closed", n)
	}
	release()
	waitWatching(t, r, 0)
}

// TestRevocableOnlyTheRevoked: of requests in flight together, a reload
// ends those of the caller it removed, with errRevoked, and no other.
func TestRevocableOnlyTheRevoked(t *testing.T) {
	tokA, hashA, _ := core.NewToken()
	tokB, hashB, _ := core.NewToken()
	dir, err := core.NewDirectory(nil, []core.TokenEntry{{Name: "a", Hash: hashA}, {Name: "b", Hash: hashB}})
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	a, _ := live.ByToken(tokA)
	b, _ := live.ByToken(tokB)
	r := &revoker{ids: live, logger: slog.New(slog.DiscardHandler), w: netutil.Watcher{Interval: revalidateInterval}}
	t.Cleanup(r.close)
	ctxA, releaseA := r.revocable(t.Context(), &a)
	defer releaseA()
	ctxA2, releaseA2 := r.revocable(t.Context(), &a)
	defer releaseA2()
	ctxB, releaseB := r.revocable(t.Context(), &b)
	defer releaseB()
	onlyB, err := core.NewDirectory(nil, []core.TokenEntry{{Name: "b", Hash: hashB}})
	if err != nil {
		t.Fatal(err)
	}
	live.Store(onlyB)
	for _, ctx := range []context.Context{ctxA, ctxA2} {
		select {
		case <-ctx.Done():
			if !revoked(ctx) {
				t.Fatalf("ended by %v, not the revocation", context.Cause(ctx))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a request of the removed caller was not revoked")
		}
	}
	// Two more checks have run: b's request stands.
	time.Sleep(2 * revalidateInterval)
	if ctxB.Err() != nil {
		t.Fatalf("the standing caller's request ended: %v", context.Cause(ctxB))
	}
}
