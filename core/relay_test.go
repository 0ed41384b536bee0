package core_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// relayNet is a head serving the relay, a worker registered with it and
// the keys of a granted and an ungranted client.
type relayNet struct {
	head, worker      *coretest.Node
	relay             *core.RelayServer
	granted, stranger ed25519.PrivateKey
}

// startRelay starts a head with cfg (MayListen and MayConnect filled in
// when nil: call:worker and RelayAccess), and, unless noWorker, a worker
// serving echo on test/a that registers with the head.
func startRelay(t *testing.T, cfg core.RelayConfig, noWorker bool) *relayNet {
	t.Helper()
	rn := &relayNet{granted: coretest.NewKey(t), stranger: coretest.NewKey(t)}
	workerKey := coretest.NewKey(t)
	if cfg.MayListen == nil {
		cfg.MayListen = func(id *core.Identity) error {
			return core.AccessControl{AllScopes: []string{"call:worker"}}.Check(id)
		}
	}
	if cfg.MayConnect == nil {
		cfg.MayConnect = core.RelayAccess
	}
	rs, err := core.NewRelayServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rn.relay = rs
	rn.head = coretest.Start(t, core.Config{}, rs)
	dir, err := core.NewDirectory([]core.PeerEntry{
		{ID: "worker", NodeIDs: []core.NodeID{coretest.NodeID(workerKey)}, Scopes: []string{"call:worker"}},
		{ID: "client", NodeIDs: []core.NodeID{coretest.NodeID(rn.granted)}, Scopes: []string{core.RelayScope}},
		{ID: "stranger", NodeIDs: []core.NodeID{coretest.NodeID(rn.stranger)}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rn.head.Identities.Store(dir)
	if noWorker {
		return rn
	}
	rn.worker = coretest.Start(t, core.Config{Key: workerKey}, echo{[]string{"test/a"}})
	wdir, err := core.NewDirectory([]core.PeerEntry{{ID: "client", NodeIDs: []core.NodeID{coretest.NodeID(rn.granted)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rn.worker.Identities.Store(wdir)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rn.worker.Endpoint.ListenVia(ctx, &core.Dialer{Key: workerKey, Network: core.NetworkQUIC}, rn.head.Addr)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, func() bool { return rs.Workers() == 1 })
	return rn
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRelayRoundTrip checks that a client reaches a worker through the
// head over either transport to the head, that the worker sees the
// client's own identity, and that the connection says it is relayed.
func TestRelayRoundTrip(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, false)
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		t.Run(string(network), func(t *testing.T) {
			d := &core.Dialer{Key: rn.granted, Network: network, Via: rn.head.Addr, RelayOnly: true}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := d.Dial(ctx, rn.worker.ID.String(), "test/a")
			if err != nil {
				t.Fatalf("dial via head: %v", err)
			}
			defer c.CloseWithError(core.CodeNoError, "")
			if c.Peer().NodeID != rn.worker.ID {
				t.Errorf("peer %v, want the worker %v", c.Peer().NodeID, rn.worker.ID)
			}
			if got := c.Peer().RemoteAddr.String(); !strings.HasPrefix(got, "relay:") {
				t.Errorf("remote addr %q, want relay:<head>", got)
			}
			// The worker counts it until the echo below ends it.
			waitFor(t, func() bool { return rn.worker.Endpoint.RelayedConns() == 1 })
			if got, want := roundTrip(t, c, "hello"), "test/a client: hello"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
	if got := rn.worker.Endpoint.RelayHead(); got != rn.head.Addr {
		t.Errorf("the worker says it is registered with %q, want %q", got, rn.head.Addr)
	}
	if got := rn.relay.Registered(); len(got) != 1 || got[0] != rn.worker.ID {
		t.Errorf("the head lists %v registered, want the worker %v", got, rn.worker.ID)
	}
}

// TestRelayRefusals checks each refusal a client can meet on the way.
func TestRelayRefusals(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, false)
	absent := coretest.NodeID(coretest.NewKey(t))
	for _, tc := range []struct {
		name   string
		key    ed25519.PrivateKey
		target string
		alpn   string
		code   core.RelayCode
		want   string
	}{
		{"anonymous", nil, rn.worker.ID.String(), "test/a", core.RelayForbidden, `unknown key: needs scope "relay"`},
		{"no relay scope", rn.stranger, rn.worker.ID.String(), "test/a", core.RelayForbidden, `needs scope "relay"`},
		{"not attached", rn.granted, absent.String(), "test/a", core.RelayNoNode, "no such node"},
		{"alpn not served", rn.granted, rn.worker.ID.String(), "test/none", core.RelayRefused, "no such alpn"},
		{"unpinned target", rn.granted, "127.0.0.1:9", "test/a", "", "needs the node's key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &core.Dialer{Key: tc.key, Network: core.NetworkQUIC, Via: rn.head.Addr, RelayOnly: true}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := d.Dial(ctx, tc.target, tc.alpn)
			if err == nil {
				c.CloseWithError(core.CodeNoError, "")
				t.Fatal("dial succeeded")
			}
			var re *core.RelayError
			if tc.code != "" && (!errors.As(err, &re) || re.Code != tc.code) {
				t.Errorf("err %v, want relay code %s", err, tc.code)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q does not say %q", err, tc.want)
			}
		})
	}
}

// newWorkerKey makes a key the head lets register (call:worker), in a
// directory where the granted client keeps its relay scope.
func (rn *relayNet) newWorkerKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	wkey := coretest.NewKey(t)
	dir, err := core.NewDirectory([]core.PeerEntry{
		{ID: "worker", NodeIDs: []core.NodeID{coretest.NodeID(wkey)}, Scopes: []string{"call:worker"}},
		{ID: "client", NodeIDs: []core.NodeID{coretest.NodeID(rn.granted)}, Scopes: []string{core.RelayScope}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rn.head.Identities.Store(dir)
	return wkey
}

// fakeWorker registers key with the head by hand and returns the
// registration's connection, from which the test takes the head's accept
// streams.
func fakeWorker(t *testing.T, head *coretest.Node, key ed25519.PrivateKey) core.Conn {
	t.Helper()
	hc := head.Dial(t, core.NetworkQUIC, key, core.RelayALPN)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := hc.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(core.AppendFrame(nil, []byte(`{"op":"listen"}`))); err != nil {
		t.Fatal(err)
	}
	b, err := core.FrameLimits{}.ReadFrame(s, 1024)
	if err != nil || string(b) != `{"ok":true}` {
		t.Fatalf("listen reply %q, %v", b, err)
	}
	return hc
}

// TestRelayHeadSeesCiphertext checks that what the head relays from a
// client is TLS: the first bytes a worker reads on an accepted stream
// are a TLS handshake record (0x16 0x03), the client's ClientHello.
func TestRelayHeadSeesCiphertext(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, true)
	wkey := rn.newWorkerKey(t)
	hc := fakeWorker(t, rn.head, wkey)
	got := make(chan []byte, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := hc.AcceptStream(ctx)
		if err != nil {
			got <- nil
			return
		}
		defer s.Abort(core.CodeNoError)
		_ = s.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := core.FrameLimits{}.ReadFrame(s, 1024)
		if err != nil || !strings.Contains(string(b), `"op":"accept"`) {
			got <- b
			return
		}
		_, _ = s.Write(core.AppendFrame(nil, []byte(`{"ok":true}`)))
		rec := make([]byte, 3)
		if _, err := io.ReadFull(s, rec); err != nil {
			got <- nil
			return
		}
		got <- rec
	}()
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, Via: rn.head.Addr, RelayOnly: true}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if c, err := d.Dial(ctx, coretest.NodeID(wkey).String(), "test/a"); err == nil {
		c.CloseWithError(0, "")
		t.Fatal("a worker that speaks no TLS was dialled")
	}
	if rec := <-got; len(rec) != 3 || rec[0] != 0x16 || rec[1] != 0x03 {
		t.Errorf("the head relayed %x first, want a TLS handshake record 16 03 ..", rec)
	}
}

// TestRelayBounds checks a worker that never answers an accept (the
// client is refused after the accept timeout) and the per-worker cap on
// relayed streams (one more is refused as busy at once).
func TestRelayBounds(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{AcceptTimeout: 300 * time.Millisecond, MaxStreamsPerWorker: 2}, true)
	wkey := rn.newWorkerKey(t)
	wc := fakeWorker(t, rn.head, wkey) // answers nothing
	target := coretest.NodeID(wkey).String()
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, Via: rn.head.Addr, RelayOnly: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := d.Dial(ctx, target, "test/a")
	var re *core.RelayError
	if !errors.As(err, &re) || re.Code != core.RelayUnavailable {
		t.Fatalf("silent worker: %v, want %s", err, core.RelayUnavailable)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("refused after %v, want about the accept timeout", el)
	}

	// Two connects hold both slots (raw, so they stay pending), a third
	// is busy at once.
	hc := rn.head.Dial(t, core.NetworkQUIC, rn.granted, core.RelayALPN)
	connect := core.AppendFrame(nil, fmt.Appendf(nil, `{"op":"connect","node":%q,"alpn":"test/a"}`, target))
	for range 2 {
		s, err := hc.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Abort(0)
		if _, err := s.Write(connect); err != nil {
			t.Fatal(err)
		}
	}
	// Both reached the worker (the head holds their slots) before the
	// third: the worker reads their accepts (a stream the head gave up
	// on fails to read).
	for pending := 0; pending < 2; {
		s, err := wc.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Abort(0)
		if _, err := (core.FrameLimits{}).ReadFrame(s, 1024); err == nil {
			pending++
		}
	}
	_, err = d.Dial(ctx, target, "test/a")
	if !errors.As(err, &re) || re.Code != core.RelayBusy {
		t.Errorf("third connect: %v, want %s", err, core.RelayBusy)
	}
}

// TestRelayBadHeaders checks that garbage and oversized headers get a
// clear refusal, not a hang.
func TestRelayBadHeaders(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, true)
	for _, tc := range []struct {
		name string
		send []byte
		want string
	}{
		{"not json", core.AppendFrame(nil, []byte("hello")), `"error":"bad-request"`},
		{"unknown op", core.AppendFrame(nil, []byte(`{"op":"teleport"}`)), `unknown op`},
		{"punch to nobody", core.AppendFrame(nil, []byte(`{"op":"punch"}`)), `want a node or an address`},
		{"punch from the client with an address", core.AppendFrame(nil, []byte(`{"op":"punch","from":"127.0.0.1:1"}`)), `punch: name the node`},
		{"bad node", core.AppendFrame(nil, []byte(`{"op":"connect","node":"x","alpn":"a"}`)), `"error":"bad-request"`},
		{"oversized", core.AppendFrameHeader(nil, 1<<20), `header too large`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc := rn.head.Dial(t, core.NetworkQUIC, rn.granted, core.RelayALPN)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := hc.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Abort(0)
			_ = s.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := s.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			b, err := core.FrameLimits{}.ReadFrame(s, 1024)
			if err != nil || !strings.Contains(string(b), tc.want) {
				t.Errorf("reply %q, %v; want %s", b, err, tc.want)
			}
		})
	}
}

// TestRelayReplace checks that a worker's new registration replaces the
// old one, whose connection the head closes, and that connects reach the
// new one.
func TestRelayReplace(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{AcceptTimeout: 300 * time.Millisecond}, true)
	wkey := rn.newWorkerKey(t)
	first := fakeWorker(t, rn.head, wkey)
	second := fakeWorker(t, rn.head, wkey)
	select {
	case <-first.Context().Done():
		if ce, ok := core.AsCloseError(context.Cause(first.Context())); !ok || ce.Reason != "replaced" {
			t.Errorf("first registration closed with %v, want reason replaced", context.Cause(first.Context()))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first registration is still open")
	}
	if n := rn.relay.Workers(); n != 1 {
		t.Errorf("%d workers registered, want 1", n)
	}
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, Via: rn.head.Addr, RelayOnly: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dialed := make(chan struct{})
	defer func() { <-dialed }()
	go func() { // answers nothing: the accept must arrive on the second
		defer close(dialed)
		if c, err := d.Dial(ctx, coretest.NodeID(wkey).String(), "test/a"); err == nil {
			c.CloseWithError(0, "")
		}
	}()
	s, err := second.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("no accept on the new registration: %v", err)
	}
	s.Abort(0)
}

// TestRelayRoute checks that a bare NodeID whose routes are a dead
// address and a head is reached through the head, after the direct try.
func TestRelayRoute(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, false)
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, QUICTimeout: 500 * time.Millisecond, RelayOnly: true,
		Resolve: func(context.Context, core.NodeID) ([]core.Route, error) {
			return []core.Route{{Addr: "127.0.0.1:1"}, {Via: rn.head.Addr}}, nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, rn.worker.ID.String(), "test/a")
	if err != nil {
		t.Fatalf("dial by routes: %v", err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	if got := c.Peer().RemoteAddr.String(); got != "relay:"+rn.head.HostPort {
		t.Errorf("remote %q, want relay:%s", got, rn.head.HostPort)
	}
	if got, want := roundTrip(t, c, "routed"), "test/a client: routed"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestRelayRevoked checks that taking the relay scope away from a client
// ends its relayed connection, and taking call:worker from the worker ends
// its registration.
func TestRelayRevoked(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, false)
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, Via: rn.head.Addr, RelayOnly: true}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, rn.worker.ID.String(), "test/a")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	s, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := core.NewDirectory([]core.PeerEntry{
		{ID: "worker", NodeIDs: []core.NodeID{rn.worker.ID}},
		{ID: "client", NodeIDs: []core.NodeID{coretest.NodeID(rn.granted)}},
	}, nil)
	rn.head.Identities.Store(dir)
	rn.head.Endpoint.Revalidate()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("relayed stream after revocation: read %v, want it ended", err)
	}
	waitFor(t, func() bool { return rn.relay.Workers() == 0 })
}

// TestRelayRouteRaces checks that a published address that swallows
// packets (a node behind NAT) costs a resolved dial the head start, not
// its dial timeout: the relayed route starts beside it and wins.
func TestRelayRouteRaces(t *testing.T) {
	rn := startRelay(t, core.RelayConfig{}, false)
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	d := &core.Dialer{Key: rn.granted, Network: core.NetworkQUIC, QUICTimeout: 8 * time.Second, RelayOnly: true,
		Resolve: func(context.Context, core.NodeID) ([]core.Route, error) {
			return []core.Route{{Addr: sink.LocalAddr().String()}, {Via: rn.head.Addr}}, nil
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, err := d.Dial(ctx, rn.worker.ID.String(), "test/a")
	if err != nil {
		t.Fatalf("dial by routes: %v", err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("connected after %v: the relay waited for the silent address", el)
	}
	if got := c.Peer().RemoteAddr.String(); got != "relay:"+rn.head.HostPort {
		t.Errorf("remote %q, want relay:%s", got, rn.head.HostPort)
	}
}
