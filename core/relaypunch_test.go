package core_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestRelayPunchGoesDirect checks that a dial through the head over QUIC
// ends on a direct connection to the worker when nothing blocks the path
// (loopback): a QUIC connection of many streams from the worker's
// listening address, on which the worker sees the client's own identity.
func TestRelayPunchGoesDirect(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, false)
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, Via: rn.head.Addr}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, rn.worker.ID.String(), "test/a")
	if err != nil {
		t.Fatalf("dial via head: %v", err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	ua, ok := c.Peer().RemoteAddr.(*net.UDPAddr)
	if !ok || ua.String() != rn.worker.HostPort {
		t.Fatalf("remote addr %v, want the worker's own %s", c.Peer().RemoteAddr, rn.worker.HostPort)
	}
	if !c.MultiStream() || c.Peer().NodeID != rn.worker.ID {
		t.Errorf("multi-stream %v, peer %v: want a QUIC connection to the worker", c.MultiStream(), c.Peer().NodeID)
	}
	for _, msg := range []string{"one", "two"} {
		if got, want := roundTrip(t, c, msg), "test/a client: "+msg; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestRelayPunchFallsBack checks that when the punched dial finds nobody
// at the address the head gave (a worker whose registration does not
// leave from a listening socket, as behind a symmetric NAT) the client
// goes on through the relay, and that the next dial to that node skips
// the punch.
func TestRelayPunchFallsBack(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, true)
	wkey := rn.newWorkerKey(t)
	hc := fakeWorker(t, rn.head, wkey)
	ops := make(chan string, 8)
	go func() {
		for {
			s, err := hc.AcceptStream(context.Background())
			if err != nil {
				return
			}
			go func() {
				_ = s.SetDeadline(time.Now().Add(10 * time.Second))
				b, err := core.FrameLimits{}.ReadFrame(s, 1024)
				if err != nil {
					s.Abort(core.CodeNoError)
					return
				}
				switch {
				case strings.Contains(string(b), `"op":"punch"`):
					ops <- "punch"
					_, _ = s.Write(core.AppendFrame(nil, []byte(`{"ok":true}`)))
					_ = s.Close()
				case strings.Contains(string(b), `"op":"accept"`):
					ops <- "accept"
					_, _ = s.Write(core.AppendFrame(nil, []byte(`{"ok":true}`)))
					_, _ = s.Read(make([]byte, 1)) // the ClientHello; no TLS here
					s.Abort(core.CodeNoError)
				}
			}()
		}
	}()
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, Via: rn.head.Addr}
	for round, want := range [][]string{{"accept", "punch"}, {"accept"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		if c, err := d.Dial(ctx, coretest.NodeID(wkey).String(), "test/a"); err == nil {
			c.CloseWithError(0, "")
			t.Fatal("a worker that speaks no TLS was dialled")
		}
		cancel()
		if round == 0 && time.Since(start) > 5*time.Second {
			t.Errorf("the failed punch took %v before the relay", time.Since(start))
		}
		var got []string // the punch and the connect run side by side
		for range want {
			select {
			case op := <-ops:
				got = append(got, op)
			case <-time.After(5 * time.Second):
				t.Fatalf("round %d: the worker was asked %v, want %v", round, got, want)
			}
		}
		if slices.Sort(got); !slices.Equal(got, want) {
			t.Fatalf("round %d: the worker was asked %v, want %v", round, got, want)
		}
		select {
		case got := <-ops:
			t.Fatalf("round %d: the worker was also asked to %s", round, got)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestRelayListenFromOtherSocket checks that a worker whose listening
// socket cannot reach the head (here: IPv6 loopback against an IPv4
// head) still registers, from a socket of its own, and is relayed to.
func TestRelayListenFromOtherSocket(t *testing.T) {
	if ln, err := net.ListenPacket("udp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	rn := startRelay(t, core.RelayConfig{}, true)
	wkey := rn.newWorkerKey(t)
	worker := coretest.Start(t, core.Config{Key: wkey, Addr: "[::1]:0"}, echo{[]string{"test/a"}})
	wdir, err := core.NewDirectory([]core.PeerEntry{{ID: "client", NodeIDs: []core.NodeID{coretest.NodeID(rn.granted)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	worker.Identities.Store(wdir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = worker.Endpoint.ListenVia(ctx, &core.Dialer{Key: wkey, Network: core.NetworkQUIC}, rn.head.Addr)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, func() bool { return rn.relay.Workers() == 1 })
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, Via: rn.head.Addr}
	dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer dcancel()
	c, err := d.Dial(dctx, worker.ID.String(), "test/a")
	if err != nil {
		t.Fatalf("dial via head: %v", err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	if got, want := roundTrip(t, c, "hello"), "test/a client: hello"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
