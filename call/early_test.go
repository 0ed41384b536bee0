package call_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestEarlyDataReplay: a client with a ticket sends, as 0-RTT data, a
// replay-safe query, a mutation, a replay-safe query that composes a
// mutation, and (from a second client) a call with a bad token; an
// attacker on the path records those first flights and sends them to the
// node again. The node answers the replay-safe queries early and again for
// the replays, but runs each mutation once and logs the bad token once: all
// of that waits for a handshake that a replay never completes.
func TestEarlyDataReplay(t *testing.T) {
	var reads, writes, composed, inner atomic.Int32
	reg := call.NewRegistry()
	public := core.AccessControl{Public: true}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(call.Register(reg, call.Spec{Name: "test/read", ReplaySafe: true, Access: public},
		func(context.Context, *call.Request, struct{}) (int32, error) { return reads.Add(1), nil }))
	must(call.Register(reg, call.Spec{Name: "test/write", Type: call.Mutation, Access: public},
		func(context.Context, *call.Request, struct{}) (int32, error) { return writes.Add(1), nil }))
	must(call.Register(reg, call.Spec{Name: "test/inner", Type: call.Mutation, Visibility: call.Internal, Access: public},
		func(context.Context, *call.Request, struct{}) (int32, error) { return inner.Add(1), nil }))
	must(call.Register(reg, call.Spec{Name: "test/compose", ReplaySafe: true, Access: public},
		func(ctx context.Context, req *call.Request, _ struct{}) (int32, error) {
			composed.Add(1)
			var n int32
			err := req.Call(ctx, "test/inner", struct{}{}, &n)
			return n, err
		}))
	if err := call.Register(reg, call.Spec{Name: "test/bad", Type: call.Mutation, ReplaySafe: true}, func(context.Context, *call.Request, struct{}) (int, error) { return 0, nil }); err == nil {
		t.Fatal("a replay-safe mutation was registered")
	}
	var logs coretest.Buffer
	h, err := call.New(call.Config{Registry: reg, Identities: core.NewLiveDirectory(nil, nil), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	n := coretest.Start(t, core.Config{Limits: core.Limits{HandshakeTimeout: time.Second}}, h)
	relay := coretest.StartRelay(t, n.HostPort, 50*time.Millisecond)
	addr := n.ID.String() + "@" + relay.Addr
	d := &core.Dialer{Key: coretest.NewKey(t), Network: core.NetworkQUIC, Sessions: core.NewSessionCache(filepath.Join(t.TempDir(), "sessions"), 0, nil)}

	session := func(token string, wantErr bool, ops ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := call.Dial(ctx, addr, call.Options{Dialer: d, EarlyData: true, AuthToken: token})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var wg sync.WaitGroup
		for _, op := range ops {
			wg.Go(func() {
				if err := c.Call(ctx, op, nil, nil); (err != nil) != wantErr {
					t.Errorf("%s: %v", op, err)
				}
			})
		}
		wg.Wait()
	}
	rejects := func() int { return strings.Count(logs.String(), "result=reject") }
	session("", false, "test/read") // a full handshake: the ticket
	session("", false, "test/read", "test/write", "test/compose")
	session("alk_not_a_token", true, "test/read")
	if r, w, c, i, rej := reads.Load(), writes.Load(), composed.Load(), inner.Load(), rejects(); r != 2 || w != 1 || c != 1 || i != 1 || rej != 1 {
		t.Fatalf("before the replays: %d reads, %d writes, %d composed, %d inner, %d rejects; want 2, 1, 1, 1, 1", r, w, c, i, rej)
	}
	if relay.Flights() != 3 {
		t.Fatalf("relay saw %d clients, want 3", relay.Flights())
	}

	// quic-go answers packets of a connection it closed a moment ago
	// with its close; an attacker replays later.
	time.Sleep(time.Second)
	relay.Replay(t, 1)
	relay.Replay(t, 2)
	coretest.Eventually(t, 5*time.Second, "the replayed queries answered", func() bool {
		return reads.Load() == 3 && composed.Load() == 2
	})
	// The replays' handshakes time out after a second; nothing else ran.
	time.Sleep(1500 * time.Millisecond)
	if w, i, rej := writes.Load(), inner.Load(), rejects(); w != 1 || i != 1 || rej != 1 {
		t.Fatalf("after the replays: %d writes, %d inner, %d rejects; want 1, 1, 1", w, i, rej)
	}
}
