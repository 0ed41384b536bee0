package call_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type echoIn struct {
	Msg string `json:"msg"`
}

type countIn struct {
	N int `json:"n"`
}

// bytesIn asks test/bytes for N events of Size bytes and more.
type bytesIn struct {
	N    int `json:"n"`
	Size int `json:"size"`
}

// bytesSent counts the events test/bytes has sent, in every test.
var bytesSent atomic.Int64

// testOps registers the operations the tests call. cancelled receives the
// name of a handler that saw its context end.
func testOps(t testing.TB, reg *call.Registry, cancelled chan<- string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	public := core.AccessControl{Public: true}
	must(call.Register(reg, call.Spec{Name: "test/echo", Access: public},
		func(_ context.Context, req *call.Request, in echoIn) (map[string]any, error) {
			caller := "-"
			if req.Caller != nil {
				caller = req.Caller.ID
			}
			fwd := "-"
			if req.ForwardedFor != nil {
				fwd = req.ForwardedFor.ID
			}
			return map[string]any{"msg": in.Msg, "caller": caller, "forwarded_for": fwd}, nil
		}))
	must(call.Register(reg, call.Spec{Name: "test/add", Type: call.Mutation},
		func(_ context.Context, _ *call.Request, in struct{ A, B int }) (int, error) { return in.A + in.B, nil }))
	must(call.RegisterStream(reg, call.Spec{Name: "test/count", Access: public},
		func(ctx context.Context, _ *call.Request, in countIn, send func(int) error) error {
			for i := range in.N {
				if err := send(i); err != nil {
					return err
				}
			}
			return nil
		}))
	must(call.RegisterStream(reg, call.Spec{Name: "test/bytes", Access: public},
		func(ctx context.Context, _ *call.Request, in bytesIn, send func(string) error) error {
			pad := strings.Repeat("x", in.Size)
			for i := range in.N {
				if err := send(fmt.Sprintf("%08d", i) + pad); err != nil {
					return err
				}
				bytesSent.Add(1)
			}
			return nil
		}))
	must(call.Register(reg, call.Spec{Name: "test/fail", Access: public, Errors: []call.ErrorDef{{Code: "E_DECLARED"}}},
		func(_ context.Context, _ *call.Request, in struct {
			Declared bool `json:"declared"`
		}) (int, error) {
			if in.Declared {
				return 0, call.Errorf("E_DECLARED", "declared failure")
			}
			return 0, call.Errorf("E_UNDECLARED", "undeclared failure")
		}))
	must(call.Register(reg, call.Spec{Name: "test/plainfail", Access: public},
		func(context.Context, *call.Request, struct{}) (int, error) {
			return 0, errors.New("secret internal detail")
		}))
	must(call.Register(reg, call.Spec{Name: "test/hidden", Visibility: call.Internal, Access: public},
		func(context.Context, *call.Request, struct{}) (string, error) { return "hidden", nil }))
	must(call.Register(reg, call.Spec{Name: "test/compose", Access: public},
		func(ctx context.Context, req *call.Request, _ struct{}) (string, error) {
			var s string
			err := req.Call(ctx, "test/hidden", struct{}{}, &s)
			return "composed " + s, err
		}))
	must(call.Register(reg, call.Spec{Name: "test/secret", Access: core.AccessControl{AllScopes: []string{"secret"}}},
		func(context.Context, *call.Request, struct{}) (string, error) { return "secret", nil }))
	must(call.Register(reg, call.Spec{Name: "test/slow", Access: public},
		func(ctx context.Context, _ *call.Request, in struct {
			Sleep string `json:"sleep"`
		}) (string, error) {
			d, _ := time.ParseDuration(in.Sleep)
			select {
			case <-time.After(d):
				return "slept " + in.Sleep, nil
			case <-ctx.Done():
				if cancelled != nil {
					cancelled <- "test/slow"
				}
				return "", ctx.Err()
			}
		}))
	must(call.RegisterStream(reg, call.Spec{Name: "test/once", Access: public},
		func(ctx context.Context, _ *call.Request, _ struct{}, send func(int) error) error {
			if err := send(1); err != nil {
				return err
			}
			<-ctx.Done()
			if cancelled != nil {
				cancelled <- "test/once"
			}
			return ctx.Err()
		}))
	must(call.Register(reg, call.Spec{Name: "test/deadline", Access: public, Timeout: 100 * time.Millisecond},
		func(ctx context.Context, _ *call.Request, _ struct{}) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}))
	must(call.Register(reg, call.Spec{Name: "test/stubborn", Access: public, Timeout: 100 * time.Millisecond},
		func(ctx context.Context, _ *call.Request, _ struct{}) (string, error) {
			time.Sleep(400 * time.Millisecond) // ignores its context
			return "too late", nil
		}))
}

// node is a loopback node serving the call protocol.
type node struct {
	*coretest.Node
	reg *call.Registry
}

func startNode(t *testing.T, peers []core.PeerEntry, tokens []core.TokenEntry, cancelled chan<- string) *node {
	t.Helper()
	reg := call.NewRegistry()
	dir, err := core.NewDirectory(peers, tokens)
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	testOps(t, reg, cancelled)
	if err := call.RegisterBuiltins(reg, call.Info{NodeID: "test", Version: "test", ALPNs: []string{call.ALPN}}, nil); err != nil {
		t.Fatal(err)
	}
	h, err := call.New(call.Config{Registry: reg, Identities: live})
	if err != nil {
		t.Fatal(err)
	}
	return &node{Node: coretest.Start(t, core.Config{Identities: live}, h), reg: reg}
}

func dial(t *testing.T, n *node, network core.Network, key ed25519.PrivateKey, token string) *call.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := call.Dial(ctx, n.Addr, call.Options{Dialer: &core.Dialer{Key: key, Network: network}, AuthToken: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var networks = []core.Network{core.NetworkQUIC, core.NetworkTCP}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestCalls(t *testing.T) {
	key := coretest.NewKey(t)
	n := startNode(t, []core.PeerEntry{{ID: "alice", NodeIDs: []core.NodeID{coretest.NodeID(key)}}}, nil, nil)
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			c := dial(t, n, network, key, "")
			var echo map[string]string
			if err := c.Call(ctx(t), "test/echo", echoIn{"hi"}, &echo); err != nil || echo["msg"] != "hi" || echo["caller"] != "alice" {
				t.Errorf("echo: %v %v", echo, err)
			}
			if err := c.Call(ctx(t), "/test/echo", echoIn{"slash"}, &echo); err != nil || echo["msg"] != "slash" {
				t.Errorf("leading slash: %v %v", echo, err)
			}
			var sum int
			if err := c.Call(ctx(t), "test/add", map[string]int{"A": 2, "B": 3}, &sum); err != nil || sum != 5 {
				t.Errorf("add: %d %v", sum, err)
			}
			var got []int
			for v, err := range c.Subscribe(ctx(t), "test/count", countIn{5}) {
				if err != nil {
					t.Fatalf("subscription: %v", err)
				}
				var i int
				json.Unmarshal(v, &i)
				got = append(got, i)
			}
			if fmt.Sprint(got) != "[0 1 2 3 4]" {
				t.Errorf("subscription got %v", got)
			}
			var s string
			if err := c.Call(ctx(t), "test/compose", nil, &s); err != nil || s != "composed hidden" {
				t.Errorf("compose: %q %v", s, err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	key := coretest.NewKey(t)
	n := startNode(t, []core.PeerEntry{{ID: "alice", NodeIDs: []core.NodeID{coretest.NodeID(key)}}}, nil, nil)
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			c := dial(t, n, network, key, "")
			for _, tc := range []struct {
				op   string
				in   any
				code call.Code
			}{
				{"test/nothing", nil, call.CodeNotFound},
				{"test/hidden", nil, call.CodeNotFound},
				{"test/fail", map[string]bool{"declared": true}, "E_DECLARED"},
				{"test/fail", map[string]bool{"declared": false}, call.CodeInternal},
				{"test/plainfail", nil, call.CodeInternal},
				{"test/echo", map[string]int{"msg": 5}, call.CodeInvalidInput},
				{"test/echo", map[string]string{"msg": "x", "extra": "y"}, call.CodeInvalidInput},
				{"test/echo", "not an object", call.CodeInvalidInput},
				{"test/secret", nil, call.CodeForbidden},
				{"test/deadline", nil, call.CodeTimeout},
				{"test/stubborn", nil, call.CodeTimeout},
			} {
				err := c.Call(ctx(t), tc.op, tc.in, nil)
				var ce *call.Error
				if !errors.As(err, &ce) || ce.Code != tc.code {
					t.Errorf("%s(%v): got %v, want %s", tc.op, tc.in, err, tc.code)
					continue
				}
				if tc.code == call.CodeTimeout && !ce.Retryable {
					t.Errorf("TIMEOUT not retryable")
				}
				if tc.op == "test/plainfail" && ce.Message != "internal error" {
					t.Errorf("internal error leaked %q", ce.Message)
				}
				if tc.code == call.CodeInvalidInput && tc.op == "test/echo" && len(ce.Details) == 0 && tc.in != "not an object" {
					t.Errorf("INVALID_INPUT without details")
				}
			}
			// A subscription that ends without output is no answer to a call.
			if err := c.Call(ctx(t), "test/count", countIn{0}, nil); !call.IsCode(err, call.CodeInvalidOperationType) {
				t.Errorf("subscription as a call: %v", err)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	alice, bob := coretest.NewKey(t), coretest.NewKey(t)
	token, hash, _ := core.NewToken()
	n := startNode(t, []core.PeerEntry{
		{ID: "alice", NodeIDs: []core.NodeID{coretest.NodeID(alice)}},
		{ID: "bob", NodeIDs: []core.NodeID{coretest.NodeID(bob)}, Scopes: []string{"secret"}},
	}, []core.TokenEntry{{Name: "ci", Hash: hash, Scopes: []string{"secret"}}}, nil)
	unknown, _, _ := core.NewToken()
	for _, tc := range []struct {
		name  string
		key   ed25519.PrivateKey
		token string
		echo  string // caller seen by test/echo, "" if refused
		add   call.Code
		sec   call.Code
	}{
		{"anonymous", nil, "", "-", call.CodeForbidden, call.CodeForbidden},
		{"alice", alice, "", "alice", "", call.CodeForbidden},
		{"bob scoped", bob, "", "bob", "", ""},
		{"token replaces identity", alice, token, "ci", "", ""},
		{"bad token is forbidden", bob, unknown, "", call.CodeForbidden, call.CodeForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, n, core.NetworkQUIC, tc.key, tc.token)
			var echo map[string]string
			err := c.Call(ctx(t), "test/echo", echoIn{"x"}, &echo)
			switch {
			case tc.echo == "" && !call.IsCode(err, call.CodeForbidden):
				t.Errorf("echo with a bad token: %v", err)
			case tc.echo != "" && (err != nil || echo["caller"] != tc.echo):
				t.Errorf("echo caller %q (%v), want %q", echo["caller"], err, tc.echo)
			}
			inputs := map[string]any{"test/add": map[string]int{"A": 1, "B": 2}, "test/secret": nil}
			for op, want := range map[string]call.Code{"test/add": tc.add, "test/secret": tc.sec} {
				err := c.Call(ctx(t), op, inputs[op], nil)
				if (want == "" && err != nil) || (want != "" && !call.IsCode(err, want)) {
					t.Errorf("%s: %v, want %q", op, err, want)
				}
			}
		})
	}
}

func TestBuiltins(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	c := dial(t, n, core.NetworkQUIC, nil, "")
	var list []call.ListedOp
	if err := c.Call(ctx(t), "services/list", nil, &list); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, o := range list {
		names[o.Name] = true
	}
	if !names["test/echo"] || names["test/hidden"] || names["test/secret"] || names["test/add"] {
		t.Errorf("anonymous list: %v", names)
	}
	var spec call.Spec
	if err := c.Call(ctx(t), "services/schema", map[string]string{"name": "test/echo"}, &spec); err != nil || spec.Type != call.Query || spec.Input == nil || !spec.Access.Public {
		t.Errorf("schema: %+v %v", spec, err)
	}
	if err := c.Call(ctx(t), "services/schema", map[string]string{"name": "test/hidden"}, &spec); !call.IsCode(err, call.CodeNotFound) {
		t.Errorf("schema of an internal op: %v", err)
	}
	var info call.Info
	if err := c.Call(ctx(t), "services/info", nil, &info); err != nil || info.Ops != n.reg.Len() {
		t.Errorf("info: %+v %v", info, err)
	}
	var pong map[string]any
	if err := c.Call(ctx(t), "services/ping", nil, &pong); err != nil || pong["pong"] != true {
		t.Errorf("ping: %v %v", pong, err)
	}
}

func TestAbortReachesHandler(t *testing.T) {
	cancelled := make(chan string, 4)
	n := startNode(t, nil, nil, cancelled)
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			c := dial(t, n, network, nil, "")
			cctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- c.Call(cctx, "test/slow", map[string]string{"sleep": "1m"}, nil) }()
			time.Sleep(100 * time.Millisecond)
			start := time.Now()
			cancel()
			select {
			case <-cancelled:
				if d := time.Since(start); d > 100*time.Millisecond {
					t.Errorf("handler saw the abort after %v", d)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("handler never saw the abort")
			}
			if err := <-errc; err == nil {
				t.Error("aborted call succeeded")
			}
			// The connection keeps serving.
			if err := c.Call(ctx(t), "test/echo", echoIn{"after"}, nil); err != nil {
				t.Errorf("call after abort: %v", err)
			}
		})
	}
}

// TestSubscriptionCalledAsQueryIsAborted: a subscription called like a
// query ends on the node once its first answer is taken, on an otherwise
// idle connection too, where the call.aborted that ends it has no other
// frame to leave with on TCP+TLS.
func TestSubscriptionCalledAsQueryIsAborted(t *testing.T) {
	cancelled := make(chan string, 4)
	n := startNode(t, nil, nil, cancelled)
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			c := dial(t, n, network, nil, "")
			var first int
			if err := c.Call(ctx(t), "test/once", struct{}{}, &first); err != nil || first != 1 {
				t.Fatalf("call: %d, %v", first, err)
			}
			select {
			case op := <-cancelled:
				if op != "test/once" {
					t.Fatalf("%s cancelled", op)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the subscription was never aborted")
			}
		})
	}
}

// TestSingleStreamNoHeadOfLine: over TCP+TLS, 100 concurrent calls with a
// slow one among them finish without waiting for it.
func TestSingleStreamNoHeadOfLine(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	c := dial(t, n, core.NetworkTCP, nil, "")
	slow := make(chan error, 1)
	go func() { slow <- c.Call(ctx(t), "test/slow", map[string]string{"sleep": "3s"}, nil) }()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 100 {
		wg.Go(func() {
			var out map[string]string
			if err := c.Call(ctx(t), "test/echo", echoIn{fmt.Sprint(i)}, &out); err != nil || out["msg"] != fmt.Sprint(i) {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("100 calls took %v behind a slow one", d)
	}
	if failed.Load() > 0 {
		t.Errorf("%d calls failed", failed.Load())
	}
	if err := <-slow; err != nil {
		t.Errorf("slow call: %v", err)
	}
}

// TestAbandonedCallsReturnStreams checks that calls ended early (a
// subscription left after one event, a subscription called like a query)
// give their QUIC streams back: far more of them than the connection's
// stream limit (100) run one after another, and the connection still works.
func TestAbandonedCallsReturnStreams(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	c := dial(t, n, core.NetworkQUIC, nil, "")
	cx := ctx(t)
	endless := countIn{N: 1 << 30}
	const rounds = 150
	for i := range rounds {
		for _, err := range c.Subscribe(cx, "test/count", endless) {
			if err != nil {
				t.Fatalf("subscription %d: %v", i, err)
			}
			break
		}
		var first int
		if err := c.Call(cx, "test/count", endless, &first); err != nil {
			t.Fatalf("subscription called as a query, %d: %v", i, err)
		}
	}
	var out map[string]any
	if err := c.Call(cx, "test/echo", echoIn{Msg: "still here"}, &out); err != nil || out["msg"] != "still here" {
		t.Fatalf("after %d abandoned calls: %v %v", 2*rounds, out, err)
	}
}

// TestSlowSubscriberGetsBackpressure checks that on QUIC a consumer slower
// than the handler loses nothing: the handler waits for it.
func TestSlowSubscriberGetsBackpressure(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	c := dial(t, n, core.NetworkQUIC, nil, "")
	const total = 5000 // far beyond the 256 buffered events
	got := 0
	for out, err := range c.Subscribe(ctx(t), "test/count", countIn{N: total}) {
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		if got == 0 {
			time.Sleep(300 * time.Millisecond) // let the handler run ahead
		}
		if string(out) != strconv.Itoa(got) {
			t.Fatalf("event %d is %s", got, out)
		}
		got++
	}
	if got != total {
		t.Fatalf("got %d events, want %d", got, total)
	}
}
