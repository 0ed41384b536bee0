package call_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestSingleStreamSlowSubscriber: over TCP+TLS a subscription whose consumer
// stalls is back-pressured within its window instead of being cut off, and
// the connection's other calls and subscriptions go on meanwhile.
func TestSingleStreamSlowSubscriber(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	c := dial(t, n, core.NetworkTCP, nil, "")
	cx := ctx(t)
	const total, size = 2000, 1024 // about 2 MiB: eight windows
	before := bytesSent.Load()
	got := 0
	for out, err := range c.Subscribe(cx, "test/bytes", bytesIn{N: total, Size: size}) {
		if err != nil {
			t.Fatalf("after %d events: %v", got, err)
		}
		var s string
		if err := json.Unmarshal(out, &s); err != nil || !strings.HasPrefix(s, fmt.Sprintf("%08d", got)) {
			t.Fatalf("event %d is %.12q (%v)", got, s, err)
		}
		if got == 0 {
			// The consumer stalls for a second, busy with other calls on
			// the same connection.
			lat := otherCalls(t, c, time.Second)
			slices.Sort(lat)
			if p99 := lat[len(lat)*99/100]; p99 > time.Second {
				t.Errorf("p99 of %d calls beside a stalled subscription: %v", len(lat), p99)
			}
			// The producer stopped within the window: one frame is about
			// size+90 bytes, and one more may start while credit is left.
			if sent := bytesSent.Load() - before; sent > call.CallWindow/size+1 {
				t.Errorf("producer sent %d events to a stalled consumer; the window holds %d", sent, call.CallWindow/size)
			}
		}
		if got%50 == 0 {
			time.Sleep(time.Millisecond) // and stays slow
		}
		got++
	}
	if got != total {
		t.Fatalf("got %d events, want %d", got, total)
	}
}

// otherCalls makes echo calls on c for d, and runs a 5000-event
// subscription to its end; it returns the echo calls' latencies.
func otherCalls(t *testing.T, c *call.Client, d time.Duration) []time.Duration {
	t.Helper()
	var wg sync.WaitGroup
	wg.Go(func() {
		got := 0
		for _, err := range c.Subscribe(ctx(t), "test/count", countIn{N: 5000}) {
			if err != nil {
				t.Errorf("second subscription after %d events: %v", got, err)
				return
			}
			got++
		}
		if got != 5000 {
			t.Errorf("second subscription: %d events", got)
		}
	})
	defer wg.Wait()
	var lat []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); {
		start := time.Now()
		var out map[string]string
		if err := c.Call(ctx(t), "test/echo", echoIn{"beside"}, &out); err != nil || out["msg"] != "beside" {
			t.Fatalf("call beside a stalled subscription: %v %v", out, err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

// TestSingleStreamCalleeKeepsWindow drives a node over raw TCP+TLS: it sends
// a call's events only within the window the caller offered and the
// credits granted, ignores credits for calls it does not serve, saturates
// an absurd credit instead of overflowing, and sends freely to a caller
// that offers no window (one that predates flow control).
func TestSingleStreamCalleeKeepsWindow(t *testing.T) {
	n := startNode(t, nil, nil, nil)
	conn := n.Dial(t, core.NetworkTCP, nil, call.ALPN)
	st, err := conn.OpenStream(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	frames := make(chan call.Envelope, 1024)
	var rwg sync.WaitGroup
	rwg.Go(func() {
		defer close(frames)
		for {
			body, err := call.ReadFrame(st, call.HardMaxFrameBytes)
			if err != nil {
				return
			}
			env, err := call.DecodeEnvelope(body)
			if err != nil {
				t.Errorf("node sent a bad envelope: %v", err)
				return
			}
			frames <- env
		}
	})
	t.Cleanup(func() {
		conn.CloseWithError(core.CodeNoError, "")
		rwg.Wait()
	})
	send := func(typ, id string, payload any) {
		t.Helper()
		frame, err := call.EncodeEnvelope(typ, id, payload)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	// recv takes frames until id's terminal one, or until no frame came
	// for first (before the first frame) or quiet (after it); it returns
	// id's call.responded count and whether the call ended.
	recv := func(id string, first, quiet time.Duration) (events int, ended bool) {
		t.Helper()
		wait := first
		for {
			select {
			case env, ok := <-frames:
				switch {
				case !ok:
					t.Fatalf("stream ended after %d events of %s", events, id)
				case env.ID != id:
					t.Fatalf("unexpected %s for %q", env.Type, env.ID)
				case env.Type == call.TypeResponded:
					events++
					wait = quiet
				case env.Type == call.TypeCompleted:
					return events, true
				default:
					t.Fatalf("%s for %s: %s", env.Type, id, env.Payload)
				}
			case <-time.After(wait):
				return events, false
			}
		}
	}
	const total, size = 300, 1024 // 300 KiB: more than a window
	input := json.RawMessage(fmt.Sprintf(`{"n":%d,"size":%d}`, total, size))

	// No window: everything arrives, no credit needed.
	send(call.TypeRequested, "old", call.RequestPayload{OperationID: "test/bytes", Input: input})
	if got, ended := recv("old", 10*time.Second, 10*time.Second); got != total || !ended {
		t.Fatalf("caller without a window: %d events, ended %v", got, ended)
	}

	// A 4 KiB window: at most four frames of about 1.1 KiB, then nothing.
	send(call.TypeRequested, "w", call.RequestPayload{OperationID: "test/bytes", Input: input, Window: 4096})
	got, ended := recv("w", 10*time.Second, 500*time.Millisecond)
	if got == 0 || got > 4096/size+1 || ended {
		t.Fatalf("4 KiB window: %d events before the producer stopped (ended %v)", got, ended)
	}
	// Credits for calls the node does not serve, and malformed ones, are
	// dropped without an answer; the call still waits.
	send(call.TypeCredit, "", call.CreditPayload{ID: "nope", Bytes: 1 << 20})
	send(call.TypeCredit, "", json.RawMessage(`{"id":"w","bytes":-1}`))
	send(call.TypeCredit, "", json.RawMessage(`{"id":"w","bytes":0}`))
	send(call.TypeCredit, "", json.RawMessage(`{"id":"w"}`))
	if more, _ := recv("w", 500*time.Millisecond, 0); more != 0 {
		t.Fatalf("%d events after credits that grant nothing", more)
	}
	// Absurd credit, twice: it saturates; an overflow would stall the call.
	send(call.TypeCredit, "", call.CreditPayload{ID: "w", Bytes: math.MaxUint64})
	send(call.TypeCredit, "", call.CreditPayload{ID: "w", Bytes: math.MaxUint64})
	more, ended := recv("w", 10*time.Second, 10*time.Second)
	if got+more != total || !ended {
		t.Fatalf("after the absurd credit: %d+%d events, ended %v", got, more, ended)
	}
	// The connection serves on.
	send(call.TypeRequested, "e", call.RequestPayload{OperationID: "test/echo", Input: json.RawMessage(`{"msg":"x"}`)})
	select {
	case env := <-frames:
		if env.ID != "e" || env.Type != call.TypeResponded {
			t.Fatalf("echo answered %s for %q", env.Type, env.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("echo unanswered")
	}
}

// flooder is a callee that ignores flow control: asked for "flood", it
// sends floodEvents events at once, as a peer that predates call.credit
// (or a hostile one) does. Other calls get one event. It reports the ids
// the caller aborts, and every call.credit it gets.
type flooder struct {
	aborted chan string
	credits chan call.Envelope
}

const floodEvents, floodSize = 1000, 1024

func (f *flooder) ALPNs() []string { return []string{call.ALPN} }

func (f *flooder) Serve(ctx context.Context, conn core.Conn) error {
	st, err := conn.AcceptStream(ctx)
	if err != nil {
		return nil
	}
	defer st.Close()
	pad, _ := json.Marshal(strings.Repeat("x", floodSize))
	for {
		body, err := call.ReadFrame(st, call.HardMaxFrameBytes)
		if err != nil {
			return nil
		}
		env, err := call.DecodeEnvelope(body)
		if err != nil {
			continue
		}
		switch env.Type {
		case call.TypeRequested:
			var p call.RequestPayload
			json.Unmarshal(env.Payload, &p)
			n := 1
			if p.OperationID == "flood" {
				n = floodEvents
			}
			var out []byte
			for range n {
				frame, _ := call.EncodeEnvelope(call.TypeResponded, env.ID, call.RespondedPayload{Output: pad})
				out = append(out, frame...)
			}
			if p.OperationID != "flood" {
				frame, _ := call.EncodeEnvelope(call.TypeCompleted, env.ID, json.RawMessage(`{}`))
				out = append(out, frame...)
			}
			if _, err := st.Write(out); err != nil {
				return nil
			}
		case call.TypeAborted:
			f.aborted <- env.ID
		case call.TypeCredit:
			f.credits <- env
		}
	}
}

// TestSingleStreamPeerBeyondWindow: a callee that sends beyond the window
// loses that call (INTERNAL, and an abort), having made the caller hold
// no more than the window and one frame; the connection goes on.
func TestSingleStreamPeerBeyondWindow(t *testing.T) {
	f := &flooder{aborted: make(chan string, 4), credits: make(chan call.Envelope, 64)}
	nd := coretest.Start(t, core.Config{}, f)
	c, err := call.Dial(ctx(t), nd.Addr, call.Options{Dialer: &core.Dialer{Network: core.NetworkTCP}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	got := 0
	var failure error
	for _, err := range c.Subscribe(ctx(t), "flood", nil) {
		if err != nil {
			failure = err
			break
		}
		if got == 0 {
			// The consumer is away until the flood has overrun the window
			// and the caller aborted the call.
			select {
			case <-f.aborted:
			case <-time.After(10 * time.Second):
				t.Fatal("the call beyond its window was not aborted")
			}
		}
		got++
	}
	frame := floodSize + 90 // about; the id is 36 bytes
	switch {
	case !call.IsCode(failure, call.CodeInternal) || !strings.Contains(failure.Error(), "receive window"):
		t.Fatalf("after %d events: %v, want INTERNAL for the window", got, failure)
	case got == 0 || got > call.CallWindow/frame+2:
		t.Fatalf("%d events (about %d KiB) queued; the window is %d KiB", got, got*frame>>10, call.CallWindow>>10)
	}
	for {
		select {
		case env := <-f.credits:
			if env.ID != "" {
				t.Errorf("call.credit with envelope id %q: a peer without flow control would answer it", env.ID)
			}
			continue
		default:
		}
		break
	}
	for v, err := range c.Subscribe(ctx(t), "other", nil) {
		if err != nil || len(v) != floodSize+2 {
			t.Fatalf("call after the flood: %d bytes, %v", len(v), err)
		}
	}
}
