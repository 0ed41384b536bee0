package core_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestStreamsOverBothTransports checks that requests one after another
// and at once get their streams on either transport: over TCP+TLS each
// after the first on a connection of its own, which closing the stream
// closes.
func TestStreamsOverBothTransports(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			d := &core.Dialer{Network: network}
			addr := n.Addr
			var dials int
			var mu sync.Mutex
			redial := func(ctx context.Context) (core.Conn, error) {
				mu.Lock()
				dials++
				mu.Unlock()
				return d.Dial(ctx, addr, "test/a")
			}
			c := n.Dial(t, network, nil, "test/a")
			streams := core.NewStreams(c, redial)
			for i := range 3 {
				msg := fmt.Sprintf("one %d", i)
				if got := roundTripOn(t, streams.Open, msg); got != "test/a -: "+msg {
					t.Fatalf("got %q", got)
				}
			}
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Go(func() {
					msg := fmt.Sprintf("many %d", i)
					if got := roundTripOn(t, streams.Open, msg); got != "test/a -: "+msg {
						t.Errorf("got %q", got)
					}
				})
			}
			wg.Wait()
			want := 0
			if network == core.NetworkTCP {
				want = 6 // 7 requests, the first on c
			}
			if dials != want {
				t.Errorf("%d dials, want %d", dials, want)
			}
			streams.Close()
			// Every connection of its own is closed: only c is left.
			deadline := time.Now().Add(5 * time.Second)
			for n.Endpoint.Conns() > 1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := n.Endpoint.Conns(); got > 1 {
				t.Errorf("%d connections open at the node, want 1", got)
			}
			c.CloseWithError(core.CodeNoError, "")
		})
	}
}

// TestStreamsWithoutRedial checks that a single-stream connection without
// a redial serves one request and then says why it cannot open another.
func TestStreamsWithoutRedial(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	c := n.Dial(t, core.NetworkTCP, nil, "test/a")
	streams := core.NewStreams(c, nil)
	if got := roundTripOn(t, streams.Open, "x"); got != "test/a -: x" {
		t.Fatalf("got %q", got)
	}
	if _, err := streams.Open(t.Context()); !errors.Is(err, core.ErrSingleStream) {
		t.Fatalf("second open: %v, want ErrSingleStream", err)
	}
}

// TestStreamsClosedRefuse checks that Open after Close fails and that a
// stream open at Close fails.
func TestStreamsClosedRefuse(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	d := &core.Dialer{Network: core.NetworkTCP}
	c := n.Dial(t, core.NetworkTCP, nil, "test/a")
	streams := core.NewStreams(c, func(ctx context.Context) (core.Conn, error) { return d.Dial(ctx, n.Addr, "test/a") })
	_ = roundTripOn(t, streams.Open, "first")
	s, err := streams.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	streams.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Error("a stream read after Close succeeded")
	}
	if _, err := streams.Open(t.Context()); err == nil {
		t.Error("Open after Close succeeded")
	}
}
