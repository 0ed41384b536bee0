package core_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// earlySeen is what an echo handler saw of one stream: its bytes and
// whether the handshake had completed when the first of them was read.
type earlySeen struct {
	data      []byte
	handshake bool
}

// echoOnce serves one stream of c: it reads it to its end, reporting to
// seen, and writes it back.
func echoOnce(ctx context.Context, c core.Conn, seen chan<- earlySeen) {
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return
	}
	defer s.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(s, first); err != nil {
		return
	}
	done := closed(core.HandshakeComplete(c))
	rest, _ := io.ReadAll(s)
	data := append(first, rest...)
	seen <- earlySeen{data, done}
	_, _ = s.Write(data)
	_ = s.CloseWrite()
	<-c.Context().Done()
}

// earlyHandler is echoOnce on one ALPN, taking connections early or not.
type earlyHandler struct {
	alpn  string
	early bool
	seen  chan earlySeen
}

func (h earlyHandler) ALPNs() []string        { return []string{h.alpn} }
func (h earlyHandler) AcceptsEarlyData() bool { return h.early }
func (h earlyHandler) Serve(ctx context.Context, c core.Conn) error {
	echoOnce(ctx, c, h.seen)
	return nil
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// earlyExchange dials addr early for alpn, writes parts on one stream and
// checks the echo. It reports whether the connection came back before
// its handshake completed, and whether the session resumed.
func earlyExchange(t *testing.T, d *core.Dialer, addr, alpn string, parts ...[]byte) (early, resumed bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialEarly(ctx, addr, alpn)
	if err != nil {
		t.Fatalf("dial early %s: %v", alpn, err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	early = !closed(core.HandshakeComplete(c))
	s, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	var want []byte
	for _, p := range parts {
		if _, err := s.Write(p); err != nil {
			t.Fatalf("write: %v", err)
		}
		want = append(want, p...)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo: got %d bytes, want %d", len(got), len(want))
	}
	_ = s.Close()
	return early, core.Resumed(c)
}

// TestEarlyData: with a ticket, DialEarly returns before the handshake and
// its first bytes leave as 0-RTT data. A handler that accepts early data
// reads them before the handshake completed; any other gets its connection
// after. A node that cannot read the ticket (restarted: new ticket keys)
// refuses the early data, and the streams write it again, byte for byte,
// past what a stream keeps.
func TestEarlyData(t *testing.T) {
	key := coretest.NewKey(t)
	seenEarly, seenLate := make(chan earlySeen, 4), make(chan earlySeen, 4)
	nodeKey := coretest.NewKey(t)
	handlers := func() []core.Handler {
		return []core.Handler{earlyHandler{"test/early", true, seenEarly}, earlyHandler{"test/late", false, seenLate}}
	}
	n := coretest.Start(t, core.Config{Key: nodeKey}, handlers()...)
	// The node's answers take 50 ms: the client cannot finish its
	// handshake before the node has read the first flight.
	relay := coretest.StartRelay(t, n.HostPort, 50*time.Millisecond)
	addr := n.ID.String() + "@" + relay.Addr
	d := &core.Dialer{Key: key, Network: core.NetworkQUIC, Sessions: core.NewSessionCache(filepath.Join(t.TempDir(), "sessions"), 0, nil)}

	for _, tc := range []struct {
		alpn string
		seen chan earlySeen
		// whether the handler saw the first byte after the handshake
		// when the client sent it early
		wantHandshake bool
	}{
		{"test/early", seenEarly, false},
		{"test/late", seenLate, true},
	} {
		early, resumed := earlyExchange(t, d, addr, tc.alpn, []byte("first"))
		if early || resumed {
			t.Fatalf("%s: first dial early=%v resumed=%v, want a full handshake", tc.alpn, early, resumed)
		}
		if got := <-tc.seen; !got.handshake {
			t.Fatalf("%s: a full handshake's data read before it completed", tc.alpn)
		}
		early, resumed = earlyExchange(t, d, addr, tc.alpn, []byte("second"))
		if !early || !resumed {
			t.Fatalf("%s: second dial early=%v resumed=%v, want both", tc.alpn, early, resumed)
		}
		if got := <-tc.seen; got.handshake != tc.wantHandshake || string(got.data) != "second" {
			t.Fatalf("%s: handler saw %q with handshake done=%v, want %v", tc.alpn, got.data, got.handshake, tc.wantHandshake)
		}
	}

	// A new node with the same key behind the same address: the ticket's
	// keys are gone, the early data is refused, and written again.
	n2 := coretest.Start(t, core.Config{Key: nodeKey}, handlers()...)
	relay.SetTarget(t, n2.HostPort)
	big := bytes.Repeat([]byte("x"), 100<<10) // more than a stream keeps
	early, resumed := earlyExchange(t, d, addr, "test/early", []byte("again,"), big)
	if !early || resumed {
		t.Fatalf("after the restart: early=%v resumed=%v, want an early dial that did not resume", early, resumed)
	}
	got := <-seenEarly
	if want := append([]byte("again,"), big...); !bytes.Equal(got.data, want) || !got.handshake {
		t.Fatalf("after the refusal the node read %d bytes (handshake done=%v), want %d once the handshake completed", len(got.data), got.handshake, len(want))
	}
	select {
	case extra := <-seenEarly:
		t.Fatalf("a second stream reached the node: %d bytes", len(extra.data))
	default:
	}

	// Restarted again: a stream written and closed early, never used
	// after, still reaches the node once the early data is refused.
	n3 := coretest.Start(t, core.Config{Key: nodeKey}, handlers()...)
	relay.SetTarget(t, n3.HostPort)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialEarly(ctx, addr, "test/early")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	s, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("fire and forget")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-seenEarly:
		if string(got.data) != "fire and forget" {
			t.Fatalf("the node read %q", got.data)
		}
	case <-ctx.Done():
		t.Fatal("a closed early stream was lost when the node refused its early data")
	}
}

// TestNoEarlyData: a node configured without early data issues tickets
// that allow none: a resumed client's DialEarly waits for the handshake,
// and even an EarlyDataHandler reads nothing before it.
func TestNoEarlyData(t *testing.T) {
	seen := make(chan earlySeen, 2)
	n := coretest.Start(t, core.Config{NoEarlyData: true}, earlyHandler{"test/early", true, seen})
	relay := coretest.StartRelay(t, n.HostPort, 20*time.Millisecond)
	addr := n.ID.String() + "@" + relay.Addr
	d := &core.Dialer{Key: coretest.NewKey(t), Network: core.NetworkQUIC, Sessions: core.NewSessionCache(filepath.Join(t.TempDir(), "sessions"), 0, nil)}
	for i := range 2 {
		early, resumed := earlyExchange(t, d, addr, "test/early", []byte("hi"))
		if early || resumed != (i == 1) {
			t.Fatalf("dial %d: early=%v resumed=%v, want a late dial that resumes the second time", i, early, resumed)
		}
		if got := <-seen; !got.handshake {
			t.Fatalf("dial %d: the handler read before the handshake completed", i)
		}
	}
}

// earlyAutoRig is a node behind a relay that passes TCP and can drop UDP,
// and an auto Dialer holding a ticket for early data from it.
type earlyAutoRig struct {
	n     *coretest.Node
	relay *coretest.Relay
	addr  string
	mem   *core.PathMemory
	d     *core.Dialer
	seen  chan earlySeen
}

const earlyHeadStart = 300 * time.Millisecond

func startEarlyAutoRig(t *testing.T, quicTimeout time.Duration) *earlyAutoRig {
	r := &earlyAutoRig{seen: make(chan earlySeen, 4), mem: core.NewPathMemory("")}
	r.n = coretest.Start(t, core.Config{}, earlyHandler{"test/early", true, r.seen})
	// The node's answers take 50 ms, so the early dial returns before the
	// handshake completes.
	r.relay = coretest.StartRelayTCP(t, r.n.HostPort, 50*time.Millisecond)
	r.addr = r.n.ID.String() + "@" + r.relay.Addr
	r.d = &core.Dialer{
		Key:           coretest.NewKey(t),
		Paths:         r.mem,
		FallbackDelay: earlyHeadStart,
		QUICTimeout:   quicTimeout,
		Sessions:      core.NewSessionCache(filepath.Join(t.TempDir(), "sessions"), 0, nil),
	}
	if early, resumed := earlyExchange(t, r.d, r.addr, "test/early", []byte("first")); early || resumed {
		t.Fatalf("first dial early=%v resumed=%v, want a full handshake", early, resumed)
	}
	<-r.seen
	if early, resumed := earlyExchange(t, r.d, r.addr, "test/early", []byte("second")); !early || !resumed {
		t.Fatalf("second dial early=%v resumed=%v, want both where UDP gets through", early, resumed)
	}
	if got := <-r.seen; got.handshake {
		t.Fatal("the node read the second dial's data after the handshake, want it early")
	}
	r.relay.Quiet() // the second connection's close reaches the node
	return r
}

// sendEarly dials early, checks that the dial came back at once, writes
// on a stream and reads until the stream fails; it returns the connection,
// closed, and how long after the dial it failed.
func (r *earlyAutoRig) sendEarly(t *testing.T) (core.Conn, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, err := r.d.DialEarly(ctx, r.addr, "test/early")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	if took := time.Since(start); took > earlyHeadStart/2 || closed(core.HandshakeComplete(c)) {
		t.Fatalf("the early dial took %v (handshake done=%v), want it back at once", took, closed(core.HandshakeComplete(c)))
	}
	s, err := c.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("third")); err != nil {
		t.Fatal(err)
	}
	_ = s.CloseWrite()
	if _, err := io.ReadAll(s); err == nil {
		t.Fatal("read an answer through a path that drops UDP")
	}
	took := time.Since(start)
	_ = c.CloseWithError(core.CodeNoError, "")
	return c, took
}

// TestDialEarlyAutoFallsBack: with Network auto, a resumed DialEarly sends
// early data over QUIC; where UDP stopped getting through after the ticket
// was issued, it still returns at once, and TCP+TLS races the handshake
// from the head start on. TCP+TLS connects first: the QUIC connection is
// closed, FellBackToTCP tells the caller to send again, the node is
// remembered for TCP+TLS, and the next Dial gets that TCP+TLS connection
// without a datagram or a new handshake. Where TCP+TLS fails too, the
// connection ends at QUIC's timeout and nothing is remembered.
func TestDialEarlyAutoFallsBack(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		r := startEarlyAutoRig(t, 20*time.Second)
		r.relay.DropUDP(true)
		c, took := r.sendEarly(t)
		if took < earlyHeadStart || took > 5*time.Second {
			t.Errorf("the early connection ended after %v, want the head start (%v) and a TCP+TLS handshake", took, earlyHeadStart)
		}
		if !core.FellBackToTCP(c) {
			t.Fatal("FellBackToTCP is false after TCP+TLS connected first")
		}
		if got := r.mem.Lookup(r.n.ID.String()); got != core.NetworkTCP {
			t.Fatalf("memory after the fallback: %q, want tcp", got)
		}
		sent := r.relay.Quiet() // the closed QUIC attempt's last datagrams
		start := time.Now()
		if early, _ := earlyExchange(t, r.d, r.addr, "test/early", []byte("again")); early {
			t.Fatal("the dial after the fallback came back early")
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("the exchange on the kept TCP+TLS connection took %v", took)
		}
		if got := <-r.seen; string(got.data) != "again" {
			t.Fatalf("the node read %q", got.data)
		}
		if r.relay.Datagrams() != sent {
			t.Error("the dial after the fallback sent datagrams")
		}
		if r.relay.TCPConns() != 1 {
			t.Errorf("%d TCP connections through the relay, want the fallback's one", r.relay.TCPConns())
		}
	})
	t.Run("down", func(t *testing.T) {
		r := startEarlyAutoRig(t, time.Second)
		r.relay.DropUDP(true)
		r.relay.SetTarget(t, "127.0.0.1:1") // TCP+TLS gets no node either
		c, took := r.sendEarly(t)
		if took < time.Second || took > 5*time.Second {
			t.Errorf("the early connection ended after %v, want QUIC's timeout (1s)", took)
		}
		if core.FellBackToTCP(c) {
			t.Error("FellBackToTCP is true where TCP+TLS failed too")
		}
		if got := r.mem.Lookup(r.n.ID.String()); got != core.NetworkAuto {
			t.Errorf("memory where both failed: %q, want nothing", got)
		}
	})
}
