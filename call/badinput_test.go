package call_test

import (
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// rawAnswer writes raw bytes on a fresh stream of conn, half-closes, and
// returns the envelopes answered before the stream ended.
func rawAnswer(t *testing.T, conn core.Conn, raw []byte) ([]call.Envelope, error) {
	t.Helper()
	s, err := conn.OpenStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	s.Write(raw)
	s.CloseWrite()
	var out []call.Envelope
	for {
		body, err := call.ReadFrame(s, call.HardMaxFrameBytes)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		env, err := call.DecodeEnvelope(body)
		if err != nil {
			t.Fatalf("node sent a bad envelope: %v", err)
		}
		out = append(out, env)
	}
}

func TestBadInputOnTheWire(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	conn, err := (&core.Dialer{Network: core.NetworkQUIC}).Dial(ctx(t), n.Addr, call.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	lenOnly := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	frame := func(s string) []byte { return call.AppendFrame(nil, []byte(s)) }
	for _, tc := range []struct {
		name    string
		raw     []byte
		errorID string // id of the call.error expected, "" for none
	}{
		{"zero-length frame", lenOnly(0), ""},
		{"oversized length", lenOnly(call.HardMaxFrameBytes + 1), ""},
		{"invalid json", frame(`{"type":"call.requested",`), ""},
		{"missing payload", frame(`{"type":"call.requested","id":"r1"}`), "r1"},
		{"unknown type", frame(`{"type":"call.exit","id":"r2","payload":{}}`), "r2"},
		{"payload not an object", frame(`{"type":"call.requested","id":"r3","payload":[1]}`), "r3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			envs, _ := rawAnswer(t, conn, tc.raw)
			if tc.errorID == "" {
				if len(envs) != 0 {
					t.Errorf("answered %+v", envs)
				}
			} else if len(envs) != 1 || envs[0].Type != call.TypeError || envs[0].ID != tc.errorID {
				t.Errorf("answered %+v, want one call.error for %s", envs, tc.errorID)
			}
			// The connection keeps serving other streams.
			envs, err := rawAnswer(t, conn, frame(`{"type":"call.requested","id":"ok","payload":{"operationId":"test/echo","input":{"msg":"still here"}}}`))
			if err != nil || len(envs) != 1 || envs[0].Type != call.TypeResponded {
				t.Fatalf("after %s: %+v %v", tc.name, envs, err)
			}
		})
	}
}

// TestSingleStreamBadEnvelopeKeepsServing: on TCP+TLS a well-framed but bad
// envelope gets its error and the one stream goes on.
func TestSingleStreamBadEnvelopeKeepsServing(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	conn, err := (&core.Dialer{Network: core.NetworkTCP}).Dial(ctx(t), n.Addr, call.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	s, _ := conn.OpenStream(ctx(t))
	s.SetDeadline(time.Now().Add(5 * time.Second))
	s.Write(call.AppendFrame(nil, []byte(`{"type":"call.nope","id":"bad","payload":{}}`)))
	s.Write(call.AppendFrame(nil, []byte(`{"type":"call.requested","id":"good","payload":{"operationId":"test/echo","input":{"msg":"x"}}}`)))
	seen := map[string]string{}
	for len(seen) < 2 {
		body, err := call.ReadFrame(s, call.HardMaxFrameBytes)
		if err != nil {
			t.Fatalf("after %v: %v", seen, err)
		}
		env, _ := call.DecodeEnvelope(body)
		seen[env.ID] = env.Type
	}
	if seen["bad"] != call.TypeError || seen["good"] != call.TypeResponded {
		t.Errorf("answers %v", seen)
	}
}

// TestManyCallsNoGrowth: 10,000 calls from 100 concurrent callers leave no
// goroutines or memory behind.
func TestManyCallsNoGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	key := coretest.NewKey(t)
	n := startNode(t, []core.PeerEntry{{ID: "load", NodeIDs: []core.NodeID{coretest.NodeID(key)}}}, nil, nil)
	c := dial(t, n, core.NetworkQUIC, key, "")
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w := range 100 {
		wg.Go(func() {
			for i := range 100 {
				var out map[string]string
				if err := c.Call(ctx(t), "test/echo", echoIn{fmt.Sprint(w, i)}, &out); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Idle workers wait two seconds for more calls before they exit.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines+5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > goroutines+5 {
		t.Errorf("goroutines grew from %d to %d", goroutines, g)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 16<<20 {
		t.Errorf("heap grew by %d MiB after 10,000 calls", grew>>20)
	}
	var stats []call.OpStats
	if err := c.Call(ctx(t), "services/stats", nil, &stats); err != nil {
		t.Fatal(err)
	}
	for _, s := range stats {
		if s.Name == "test/echo" && s.Requests < 10000 {
			t.Errorf("stats count %d echo calls", s.Requests)
		}
	}
}
