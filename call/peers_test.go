package call_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// cluster is a head with workers joined over real loopback connections.
type cluster struct {
	head      *coretest.Node
	headKey   ed25519.PrivateKey
	clientKey ed25519.PrivateKey
	keys      map[string]ed25519.PrivateKey
	blocked   chan string  // worker handlers that saw cancellation
	started   chan string  // worker handlers of demo/block that began
	network   core.Network // of the workers' and the client's connections; "" is QUIC
	peers     *call.Peers
}

type routeIn struct {
	Peer string `json:"peer,omitempty"`
	Op   string `json:"op"`
}

func startCluster(t *testing.T, policy call.Policy, workers ...string) *cluster {
	t.Helper()
	cl := &cluster{headKey: coretest.NewKey(t), clientKey: coretest.NewKey(t), keys: map[string]ed25519.PrivateKey{}, blocked: make(chan string, 8), started: make(chan string, 8)}
	peers := []core.PeerEntry{{ID: "client", NodeIDs: []core.NodeID{coretest.NodeID(cl.clientKey)}, Scopes: []string{call.RouteScope}}}
	for _, w := range append(workers, "rogue") {
		cl.keys[w] = coretest.NewKey(t)
		peers = append(peers, core.PeerEntry{ID: w, NodeIDs: []core.NodeID{coretest.NodeID(cl.keys[w])}, Scopes: []string{call.WorkerScope}})
	}
	dir, err := core.NewDirectory(peers, nil)
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	reg := call.NewRegistry()
	ps := call.NewPeers(policy, nil)
	cl.peers = ps
	if err := call.RegisterBuiltins(reg, call.Info{}, ps); err != nil {
		t.Fatal(err)
	}
	reach := call.Reach{Ops: []string{"demo/exec", "demo/block"}, Pinned: []call.PeerOp{{Peer: "worker-a", Op: "demo/pinned"}}}
	err = call.Register(reg, call.Spec{Name: "demo/route", Reach: reach}, func(ctx context.Context, req *call.Request, in routeIn) (string, error) {
		ref := call.Any()
		if in.Peer != "" {
			ref = call.Specific(in.Peer)
		}
		var out string
		err := req.CallPeer(ctx, ref, in.Op, nil, &out)
		return out, err
	})
	if err != nil {
		t.Fatal(err)
	}
	// A worker's query through SubscribePeer: its answer is the one output.
	err = call.RegisterStream(reg, call.Spec{Name: "demo/sub-exec", Reach: call.Reach{Ops: []string{"demo/exec"}}},
		func(ctx context.Context, req *call.Request, _ struct{}, send func(json.RawMessage) error) error {
			for out, err := range req.SubscribePeer(ctx, call.Specific("worker-a"), "demo/exec", nil) {
				if err != nil {
					return err
				}
				if err := send(out); err != nil {
					return err
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	// Routes the head passes through without a handler of its own.
	obj := &jsonschema.Schema{Type: "object", Required: []string{"n"}, Properties: map[string]*jsonschema.Schema{"n": {Type: "integer"}}}
	for _, r := range []struct {
		spec call.Spec
		ref  call.PeerRef
		op   string
	}{
		{call.Spec{Name: "demo/fwd-exec"}, call.Specific("worker-a"), "demo/exec"},
		{call.Spec{Name: "demo/fwd-echo"}, call.Any(), "demo/echo-raw"},
		{call.Spec{Name: "demo/fwd-checked", Input: obj}, call.Any(), "demo/echo-raw"},
		{call.Spec{Name: "demo/fwd-ticks", Type: call.Subscription}, call.Specific("worker-a"), "demo/ticks"},
		{call.Spec{Name: "demo/fwd-exec-stream", Type: call.Subscription}, call.Specific("worker-a"), "demo/exec"},
		{call.Spec{Name: "demo/fwd-block", Timeout: -1}, call.Specific("worker-a"), "demo/block"},
		{call.Spec{Name: "demo/fwd-slow", Timeout: 300 * time.Millisecond}, call.Specific("worker-a"), "demo/block"},
		{call.Spec{Name: "demo/fwd-missing"}, call.Specific("worker-a"), "demo/missing"},
		{call.Spec{Name: "demo/fwd-admin", Access: core.AccessControl{AllScopes: []string{"admin"}}}, call.Specific("worker-a"), "demo/exec"},
	} {
		if err := call.RegisterRoute(reg, r.spec, r.ref, r.op); err != nil {
			t.Fatal(err)
		}
	}
	h, err := call.New(call.Config{Registry: reg, Identities: live, Peers: ps})
	if err != nil {
		t.Fatal(err)
	}
	cl.head = coretest.Start(t, core.Config{Key: cl.headKey, Identities: live}, h)
	return cl
}

// workerRegistry is what a worker serves: demo/exec answers its name.
func (cl *cluster) workerRegistry(t *testing.T, name string) *call.Registry {
	reg := call.NewRegistry()
	if err := call.RegisterBuiltins(reg, call.Info{}, nil); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(call.Register(reg, call.Spec{Name: "demo/exec"}, func(_ context.Context, req *call.Request, _ struct{}) (string, error) {
		return fmt.Sprintf("%s for %s as %s", name, req.ForwardedFor.ID, req.Caller.ID), nil
	}))
	must(reg.Register(call.Spec{Name: "demo/echo-raw", Type: call.Query}, func(_ context.Context, _ *call.Request, in json.RawMessage, send func(json.RawMessage) error) error {
		return send(in)
	}))
	must(call.Register(reg, call.Spec{Name: "demo/pinned"}, func(context.Context, *call.Request, struct{}) (string, error) {
		return "pinned on " + name, nil
	}))
	must(call.RegisterStream(reg, call.Spec{Name: "demo/ticks"}, func(ctx context.Context, _ *call.Request, in countIn, send func(string) error) error {
		for i := range in.N {
			if err := send(fmt.Sprintf("%s tick %d", name, i)); err != nil {
				return err
			}
		}
		return nil
	}))
	must(call.Register(reg, call.Spec{Name: "demo/block", Timeout: -1}, func(ctx context.Context, _ *call.Request, _ struct{}) (string, error) {
		select {
		case cl.started <- name:
		default:
		}
		<-ctx.Done()
		cl.blocked <- name
		return "", ctx.Err()
	}))
	return reg
}

// join runs a worker until the returned stop is called.
func (cl *cluster) join(t *testing.T, name string, reg *call.Registry, as ...func(call.Options) call.Options) (stop func()) {
	t.Helper()
	dir, _ := core.NewDirectory([]core.PeerEntry{{ID: "head", NodeIDs: []core.NodeID{coretest.NodeID(cl.headKey)}}}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		opts := call.Options{
			Dialer:     &core.Dialer{Key: cl.keys[name], Network: cl.net()},
			Registry:   reg,
			Identities: core.NewLiveDirectory(dir, nil),
		}
		for _, f := range as {
			opts = f(opts)
		}
		call.Join(ctx, cl.head.Addr, opts)
	}()
	stop = func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return stop
}

func (cl *cluster) client(t *testing.T) *call.Client {
	t.Helper()
	c, err := call.Dial(ctx(t), cl.head.Addr, call.Options{Dialer: &core.Dialer{Key: cl.clientKey, Network: cl.net()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (cl *cluster) net() core.Network {
	if cl.network == "" {
		return core.NetworkQUIC
	}
	return cl.network
}

// waitPeers waits until exactly the named peers are attached.
func waitPeers(t *testing.T, c *call.Client, want ...string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(10 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		var list []call.PeerOps
		if err := c.Call(ctx(t), "services/list-peers", nil, &list); err != nil {
			t.Fatal(err)
		}
		got = got[:0]
		for _, p := range list[1:] {
			got = append(got, p.Peer)
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("attached peers %v, want %v", got, want)
}

func routed(t *testing.T, c *call.Client, peer, op string) (string, error) {
	var out string
	err := c.Call(ctx(t), "demo/route", routeIn{Peer: peer, Op: op}, &out)
	return out, err
}

func TestPeerRouting(t *testing.T) {
	cl := startCluster(t, call.First, "worker-a", "worker-b")
	c := cl.client(t)
	stopA := cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
	waitPeers(t, c, "worker-a") // a attaches first: First policy picks it
	cl.join(t, "worker-b", cl.workerRegistry(t, "worker-b"))
	waitPeers(t, c, "worker-a", "worker-b")

	for _, tc := range []struct {
		peer, op, want string
		code           call.Code
	}{
		{"worker-a", "demo/exec", "worker-a for client as head", ""},
		{"worker-b", "demo/exec", "worker-b for client as head", ""},
		{"", "demo/exec", "worker-a for client as head", ""}, // Any, First policy
		{"worker-c", "demo/exec", "", call.CodeNotFound},     // not attached
		{"worker-a", "demo/pinned", "pinned on worker-a", ""},
		{"worker-b", "demo/pinned", "", call.CodeNotFound}, // pinned to a only
		{"", "demo/pinned", "", call.CodeNotFound},         // pinned: not via Any
		{"worker-a", "demo/ticks", "", call.CodeNotFound},  // not in the reach
	} {
		got, err := routed(t, c, tc.peer, tc.op)
		if tc.code != "" {
			if !call.IsCode(err, tc.code) {
				t.Errorf("%s on %q: %v, want %s", tc.op, tc.peer, err, tc.code)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s on %q: %q %v, want %q", tc.op, tc.peer, got, err, tc.want)
		}
	}

	// peers/call passes the input on as it came: an integer past float64's
	// precision arrives whole.
	const big = `{"n":12345678901234567891,"s":"x"}`
	var raw json.RawMessage
	if err := c.Call(ctx(t), "peers/call", map[string]any{"peer": "worker-a", "operationId": "demo/echo-raw", "input": json.RawMessage(big)}, &raw); err != nil || string(raw) != big {
		t.Errorf("peers/call of demo/echo-raw: %s %v, want %s", raw, err, big)
	}

	// The CLI's route: peers/call and a subscription streamed through the head.
	var out string
	if err := c.Call(ctx(t), "peers/call", map[string]any{"peer": "worker-b", "operationId": "demo/exec"}, &out); err != nil || out != "worker-b for client as head" {
		t.Errorf("peers/call: %q %v", out, err)
	}
	var ticks []string
	for v, err := range c.Subscribe(ctx(t), "peers/subscribe", map[string]any{"peer": "worker-b", "operationId": "demo/ticks", "input": countIn{3}}) {
		if err != nil {
			t.Fatal(err)
		}
		var s string
		json.Unmarshal(v, &s)
		ticks = append(ticks, s)
	}
	if fmt.Sprint(ticks) != "[worker-b tick 0 worker-b tick 1 worker-b tick 2]" {
		t.Errorf("ticks through the head: %v", ticks)
	}

	// Worker a leaves: Specific a is NOT_FOUND, Any fails over to b.
	stopA()
	waitPeers(t, c, "worker-b")
	if _, err := routed(t, c, "worker-a", "demo/exec"); !call.IsCode(err, call.CodeNotFound) {
		t.Errorf("specific to a detached worker: %v", err)
	}
	if got, err := routed(t, c, "", "demo/exec"); err != nil || got != "worker-b for client as head" {
		t.Errorf("any after a left: %q %v", got, err)
	}
	// It comes back under the same PeerID.
	cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
	waitPeers(t, c, "worker-a", "worker-b")
	if got, err := routed(t, c, "worker-a", "demo/exec"); err != nil || got != "worker-a for client as head" {
		t.Errorf("re-attached worker: %q %v", got, err)
	}
}

func TestPeerImportCollision(t *testing.T) {
	cl := startCluster(t, call.First, "worker-a")
	c := cl.client(t)
	// A worker whose services/list names one operation twice.
	reg := call.NewRegistry()
	call.Register(reg, call.Spec{Name: "services/list", Access: core.AccessControl{Public: true}}, func(context.Context, *call.Request, struct{}) ([]call.ListedOp, error) {
		return []call.ListedOp{{Name: "demo/exec", Type: call.Query}, {Name: "demo/exec", Type: call.Query}}, nil
	})
	cl.join(t, "rogue", reg)
	cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
	waitPeers(t, c, "worker-a")
	time.Sleep(200 * time.Millisecond)
	waitPeers(t, c, "worker-a") // the rogue never attaches
}

func TestAbortCascadesToWorker(t *testing.T) {
	cl := startCluster(t, call.First, "worker-a")
	c := cl.client(t)
	cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
	waitPeers(t, c, "worker-a")
	cctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- c.Call(cctx, "peers/call", map[string]any{"peer": "worker-a", "operationId": "demo/block"}, nil)
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case <-cl.blocked:
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("worker saw the abort after %v", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("worker handler never saw the abort")
	}
	<-errc
}

func TestRoundRobin(t *testing.T) {
	cl := startCluster(t, call.RoundRobin, "worker-a", "worker-b")
	c := cl.client(t)
	cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
	cl.join(t, "worker-b", cl.workerRegistry(t, "worker-b"))
	waitPeers(t, c, "worker-a", "worker-b")
	seen := map[string]int{}
	for range 6 {
		got, err := routed(t, c, "", "demo/exec")
		if err != nil {
			t.Fatal(err)
		}
		seen[got]++
	}
	if len(seen) != 2 || seen["worker-a for client as head"] != 3 {
		t.Errorf("round robin spread %v", seen)
	}
}

// TestRoutedSubscriptionBackpressure: a subscription streamed from a
// worker through its head, both legs over TCP+TLS or over QUIC (where the
// head's leg is the stream it shares with the worker), whose consumer
// stalls is held back hop by hop (the head's relay waits for the client's
// credit or stream, the worker's handler for the head's credit) and
// completes in order.
func TestRoutedSubscriptionBackpressure(t *testing.T) {
	for _, network := range []core.Network{core.NetworkTCP, core.NetworkQUIC} {
		t.Run(string(network), func(t *testing.T) { testRoutedBackpressure(t, network) })
	}
}

func testRoutedBackpressure(t *testing.T, network core.Network) {
	cl := startCluster(t, call.First, "worker-a")
	cl.network = network
	cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
	c := cl.client(t)
	waitPeers(t, c, "worker-a")
	const total = 10000 // about 900 KiB: more than both windows
	got := 0
	for v, err := range c.Subscribe(ctx(t), "peers/subscribe", map[string]any{"peer": "worker-a", "operationId": "demo/ticks", "input": countIn{total}}) {
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		if want := fmt.Sprintf("%q", fmt.Sprintf("worker-a tick %d", got)); string(v) != want {
			t.Fatalf("event %d is %s", got, v)
		}
		if got == 0 {
			time.Sleep(500 * time.Millisecond) // both hops fill their windows
		}
		got++
	}
	if got != total {
		t.Fatalf("got %d events, want %d", got, total)
	}
}

// TestRegisterRoute: an operation the head passes through to a worker
// (call.RegisterRoute) answers as the worker's own does, over QUIC and
// TCP+TLS: the input reaches the worker as it came and is checked there,
// the output comes back as the worker wrote it, the caller travels as
// forwarded_for, the worker's errors come back as they were, the head's
// access control and its own input schema (when set) stand, and a
// subscription streams through.
func TestRegisterRoute(t *testing.T) {
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		t.Run(string(network), func(t *testing.T) {
			cl := startCluster(t, call.First, "worker-a")
			cl.network = network
			c := cl.client(t)
			cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
			waitPeers(t, c, "worker-a")

			const big = `{"n":12345678901234567891,"s":"x"}`
			for _, tc := range []struct {
				op, in, want string
				code         call.Code
			}{
				{"demo/fwd-exec", ``, `"worker-a for client as head"`, ""},
				{"demo/fwd-echo", big, big, ""}, // not decoded on the way
				{"demo/fwd-echo", ``, ``, ""},   // null: out stays unset
				{"demo/fwd-checked", `{"n":7}`, `{"n":7}`, ""},
				{"demo/fwd-checked", `{"n":"x"}`, "", call.CodeInvalidInput}, // the head's schema
				{"demo/fwd-exec", `{"x":1}`, "", call.CodeInvalidInput},      // the worker's schema
				{"demo/fwd-missing", ``, "", call.CodeNotFound},              // not on the worker
				{"demo/fwd-admin", ``, "", call.CodeForbidden},               // the head's access control
			} {
				var in any
				if tc.in != "" {
					in = json.RawMessage(tc.in)
				}
				var out json.RawMessage
				err := c.Call(ctx(t), tc.op, in, &out)
				if tc.code != "" {
					if !call.IsCode(err, tc.code) {
						t.Errorf("%s %s: %s %v, want %s", tc.op, tc.in, out, err, tc.code)
					}
					continue
				}
				if err != nil || string(out) != tc.want {
					t.Errorf("%s %s: %s %v, want %s", tc.op, tc.in, out, err, tc.want)
				}
			}

			var ticks []string
			for v, err := range c.Subscribe(ctx(t), "demo/fwd-ticks", countIn{3}) {
				if err != nil {
					t.Fatal(err)
				}
				ticks = append(ticks, string(v))
			}
			if fmt.Sprint(ticks) != `["worker-a tick 0" "worker-a tick 1" "worker-a tick 2"]` {
				t.Errorf("ticks through the route: %v", ticks)
			}
			// A worker's query relayed as a subscription: its answer is
			// the one event, and the end.
			sctx, cancel := context.WithTimeout(ctx(t), 5*time.Second)
			defer cancel()
			for _, op := range []string{"demo/fwd-exec-stream", "demo/sub-exec"} {
				var events []string
				for v, err := range c.Subscribe(sctx, op, nil) {
					if err != nil {
						t.Fatalf("%s: query relayed as a subscription, after %v: %v", op, events, err)
					}
					events = append(events, string(v))
				}
				if fmt.Sprint(events) != `["worker-a for client as head"]` {
					t.Errorf("%s: query relayed as a subscription: %v", op, events)
				}
			}
			// Over QUIC the head's calls to the worker share a stream.
			if got, want := call.PeerShares(cl.peers, "worker-a"), network == core.NetworkQUIC; got != want {
				t.Errorf("head shares a stream with its worker: %v, want %v", got, want)
			}
		})
	}
}

// TestRouteToOlderWorker: a worker that does not know call.shared answers
// it with call.error; the head then calls it on a stream per call, and
// routed calls and subscriptions work as before.
func TestRouteToOlderWorker(t *testing.T) {
	cl := startCluster(t, call.First, "worker-a")
	c := cl.client(t)
	cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"), call.AsOlderPeer)
	waitPeers(t, c, "worker-a")
	for range 3 {
		var out string
		if err := c.Call(ctx(t), "demo/fwd-exec", nil, &out); err != nil || out != "worker-a for client as head" {
			t.Fatalf("routed call: %q %v", out, err)
		}
	}
	n := 0
	for _, err := range c.Subscribe(ctx(t), "demo/fwd-ticks", countIn{5}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 5 {
		t.Errorf("%d ticks, want 5", n)
	}
	if call.PeerShares(cl.peers, "worker-a") {
		t.Error("the head shares a stream with a worker that refused it")
	}
}

// TestRegisterRouteEnds: a routed call's end reaches the worker, whichever
// side ends it: the caller's abort and the head's deadline cancel the
// worker's handler, and a worker that detaches mid-call fails the call
// with UNAVAILABLE.
func TestRegisterRouteEnds(t *testing.T) {
	cl := startCluster(t, call.First, "worker-a")
	c := cl.client(t)
	stop := cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
	waitPeers(t, c, "worker-a")
	waitFor := func(ch chan string, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("worker handler: no %s", what)
		}
	}

	// The caller aborts.
	cctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Call(cctx, "demo/fwd-block", nil, nil) }()
	waitFor(cl.started, "start")
	cancel()
	waitFor(cl.blocked, "abort")
	<-errc

	// The head's deadline.
	if err := c.Call(ctx(t), "demo/fwd-slow", nil, nil); !call.IsCode(err, call.CodeTimeout) {
		t.Errorf("route past its deadline: %v, want TIMEOUT", err)
	}
	waitFor(cl.started, "start")
	waitFor(cl.blocked, "cancellation at the deadline")

	// The worker goes away mid-call.
	go func() { errc <- c.Call(ctx(t), "demo/fwd-block", nil, nil) }()
	waitFor(cl.started, "start")
	stop()
	select {
	case err := <-errc:
		if !call.IsCode(err, call.CodeUnavailable) {
			t.Errorf("worker detached mid-call: %v, want UNAVAILABLE", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call outlived its worker")
	}
}

// TestSharedStreamLost: when the stream a head shares with a worker ends
// while a call is on it, the caller gets UNAVAILABLE, the worker's handler
// is cancelled (its answer has nowhere to go), and the next call opens a
// new shared stream.
func TestSharedStreamLost(t *testing.T) {
	cl := startCluster(t, call.First, "worker-a")
	c := cl.client(t)
	cl.join(t, "worker-a", cl.workerRegistry(t, "worker-a"))
	waitPeers(t, c, "worker-a")
	errc := make(chan error, 1)
	go func() { errc <- c.Call(ctx(t), "demo/fwd-block", nil, nil) }()
	select {
	case <-cl.started:
	case <-time.After(5 * time.Second):
		t.Fatal("worker handler never started")
	}
	if !call.AbortShared(cl.peers, "worker-a") {
		t.Fatal("the head shares no stream with its worker")
	}
	select {
	case err := <-errc:
		if !call.IsCode(err, call.CodeUnavailable) {
			t.Errorf("call on a lost shared stream: %v, want UNAVAILABLE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call outlived its stream")
	}
	select {
	case <-cl.blocked:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker's handler was not cancelled")
	}
	var out string
	if err := c.Call(ctx(t), "demo/fwd-exec", nil, &out); err != nil || out != "worker-a for client as head" {
		t.Fatalf("call after the stream was lost: %q %v", out, err)
	}
	if !call.PeerShares(cl.peers, "worker-a") {
		t.Error("no new shared stream")
	}
}
