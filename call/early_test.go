package call_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestEarlyDataReplay: a client with a ticket sends a replay-safe query and
// a mutation as 0-RTT data; an attacker on the path records that first
// flight and sends it to the node again. The node answers the query early
// and again for the replay, but runs the mutation once: it waits for a
// handshake that a replay never completes.
func TestEarlyDataReplay(t *testing.T) {
	var reads, writes atomic.Int32
	reg := call.NewRegistry()
	public := core.AccessControl{Public: true}
	if err := call.Register(reg, call.Spec{Name: "test/read", ReplaySafe: true, Access: public},
		func(context.Context, *call.Request, struct{}) (int32, error) { return reads.Add(1), nil }); err != nil {
		t.Fatal(err)
	}
	if err := call.Register(reg, call.Spec{Name: "test/write", Type: call.Mutation, Access: public},
		func(context.Context, *call.Request, struct{}) (int32, error) { return writes.Add(1), nil }); err != nil {
		t.Fatal(err)
	}
	if err := call.Register(reg, call.Spec{Name: "test/bad", Type: call.Mutation, ReplaySafe: true}, func(context.Context, *call.Request, struct{}) (int, error) { return 0, nil }); err == nil {
		t.Fatal("a replay-safe mutation was registered")
	}
	h, err := call.New(call.Config{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	n := coretest.Start(t, core.Config{Limits: core.Limits{HandshakeTimeout: time.Second}}, h)
	relay := coretest.StartRelay(t, n.HostPort, 50*time.Millisecond)
	addr := n.ID.String() + "@" + relay.Addr
	d := &core.Dialer{Key: coretest.NewKey(t), Network: core.NetworkQUIC, Sessions: core.NewSessionCache(filepath.Join(t.TempDir(), "sessions"), 0, nil)}

	session := func(ops ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := call.Dial(ctx, addr, call.Options{Dialer: d, EarlyData: true})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var wg sync.WaitGroup
		for _, op := range ops {
			wg.Go(func() {
				if err := c.Call(ctx, op, nil, nil); err != nil {
					t.Errorf("%s: %v", op, err)
				}
			})
		}
		wg.Wait()
	}
	session("test/read") // a full handshake: the ticket
	session("test/read", "test/write")
	if r, w := reads.Load(), writes.Load(); r != 2 || w != 1 {
		t.Fatalf("before the replay: %d reads, %d writes, want 2 and 1", r, w)
	}
	if relay.Flights() != 2 {
		t.Fatalf("relay saw %d clients, want 2", relay.Flights())
	}

	time.Sleep(time.Second)
	relay.Replay(t, 1)
	coretest.Eventually(t, 5*time.Second, "the replayed query answered", func() bool { return reads.Load() == 3 })
	// The replay's handshake times out after a second; the mutation never ran.
	time.Sleep(1500 * time.Millisecond)
	if w := writes.Load(); w != 1 {
		t.Fatalf("the replayed mutation ran: %d writes, want 1", w)
	}
}
