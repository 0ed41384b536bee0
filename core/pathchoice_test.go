package core_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

func TestJudgePath(t *testing.T) {
	const window = 4 * time.Second
	// 1 % loss at 60 ms: NewReno's ceiling is 1.22*1400/(0.06*0.1) =
	// 284,667 bytes/s (2.3 Mbit/s).
	lossy := core.PathStats{Transport: core.NetworkQUIC, SmoothedRTT: 60 * time.Millisecond}
	tests := []struct {
		name  string
		w     core.PathStats
		bound bool
		loss  float64
	}{
		{"lossy upload at the ceiling", with(lossy, func(s *core.PathStats) {
			s.BytesSent, s.PacketsSent, s.PacketsLost = 1_400_000, 1000, 10
		}), true, 0.01},
		{"lossy download: the receiver counts the gaps", with(lossy, func(s *core.PathStats) {
			s.BytesReceived, s.PacketsReceived, s.PacketsMissing, s.PacketsSent = 1_400_000, 990, 10, 500
		}), true, 0.01},
		{"too few losses to count", with(lossy, func(s *core.PathStats) {
			s.BytesSent, s.PacketsSent, s.PacketsLost = 140_000, 100, core.PathMinLossEvidence-1
		}), false, 0},
		{"a slow-start overshoot on a fast path", with(lossy, func(s *core.PathStats) {
			s.SmoothedRTT = 41 * time.Millisecond
			s.BytesSent, s.PacketsSent, s.PacketsLost = 80_000_000, 57_000, 600
		}), false, 600.0 / 57_000},
		{"loss below the floor", with(lossy, func(s *core.PathStats) {
			s.BytesSent, s.PacketsSent, s.PacketsLost = 100_000, 10_000, 10
		}), false, 0.001},
		{"tcp is never judged", with(lossy, func(s *core.PathStats) {
			s.Transport = core.NetworkTCP
			s.BytesSent, s.PacketsSent, s.PacketsLost = 1_400_000, 1000, 10
		}), false, 0},
		{"idle", lossy, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := core.JudgePath(tt.w, window)
			if v.LossBound != tt.bound || math.Abs(v.Loss-tt.loss) > 1e-9 {
				t.Errorf("got %v (loss %g), want loss-bound %v at loss %g", v, v.Loss, tt.bound, tt.loss)
			}
		})
	}
	v := core.JudgePath(tests[0].w, window)
	if math.Abs(v.Ceiling-284_667) > 1 || math.Abs(v.Goodput-350_000) > 1 {
		t.Errorf("ceiling %v goodput %v, want 284667 and 350000 bytes/s", v.Ceiling, v.Goodput)
	}
}

func with(s core.PathStats, f func(*core.PathStats)) core.PathStats {
	f(&s)
	return s
}

func TestPathStatsSince(t *testing.T) {
	a := core.PathStats{BytesSent: 10, PacketsLost: 3, PacketsMissing: 5}
	b := core.PathStats{BytesSent: 25, PacketsLost: 4, PacketsMissing: 2, SmoothedRTT: time.Second}
	w := b.Since(a)
	if w.BytesSent != 15 || w.PacketsLost != 1 || w.PacketsMissing != 0 || w.SmoothedRTT != time.Second {
		t.Errorf("got %+v", w)
	}
}

func TestPathMemory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "paths")
	m := core.NewPathMemory(path)
	m.TTL = time.Hour
	if got := m.Lookup("node"); got != core.NetworkAuto {
		t.Fatalf("empty memory: %q", got)
	}
	if err := m.Remember("node", core.NetworkTCP); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file %v mode %v, want 0600", err, fi)
	}
	// Another process (here another PathMemory) sees it.
	if got := core.NewPathMemory(path).Lookup("node"); got != core.NetworkTCP {
		t.Errorf("shared lookup %q, want tcp", got)
	}
	if err := m.Remember("node", core.NetworkAuto); err != nil || m.Lookup("node") != core.NetworkAuto {
		t.Errorf("forget: %v, %q", err, m.Lookup("node"))
	}
	for _, bad := range []struct {
		key string
		n   core.Network
	}{{"", core.NetworkTCP}, {"a b", core.NetworkTCP}, {"a\nb", core.NetworkTCP}, {"k", "udp"}} {
		if err := m.Remember(bad.key, bad.n); err == nil {
			t.Errorf("Remember(%q, %q) accepted", bad.key, bad.n)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "sub", ".paths.tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestPathMemoryExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paths")
	m := core.NewPathMemory(path)
	m.TTL = time.Hour
	if err := m.Remember("node", core.NetworkTCP); err != nil {
		t.Fatal(err)
	}
	// An entry that expired a second ago is not used.
	past := time.Now().Add(-time.Second).Unix()
	if err := os.WriteFile(path, fmt.Appendf(nil, "node tcp %d\nother tcp %d\n", past, past+7200), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := m.Lookup("node"); got != core.NetworkAuto {
		t.Errorf("expired entry used: %q", got)
	}
	if got := m.Lookup("other"); got != core.NetworkTCP {
		t.Errorf("live entry: %q", got)
	}
	// A change drops the expired entries from the file.
	if err := m.Remember("third", core.NetworkQUIC); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), "node tcp") || !strings.Contains(string(data), "other tcp") {
		t.Errorf("file after a change:\n%s", data)
	}
}

func TestPathMemoryCorruptIgnored(t *testing.T) {
	big := strings.Repeat("# padding\n", 7000) // > 64 KiB
	var many strings.Builder
	for i := range core.MaxPathEntries + 1 {
		fmt.Fprintf(&many, "n%d tcp %d\n", i, time.Now().Add(time.Hour).Unix())
	}
	for _, tt := range []struct{ name, content, warn string }{
		{"fields", "node tcp\n", "corrupt"},
		{"network", fmt.Sprintf("node udp %d\n", time.Now().Unix()+60), "corrupt"},
		{"expiry", "node tcp soon\n", "corrupt"},
		{"binary", "\x00\x01\x02 tcp 1\n", "corrupt"},
		{"too large", "node tcp 99999999999\n" + big, "unreadable"},
		{"too many entries", many.String(), "corrupt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "paths")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			m := core.NewPathMemory(path)
			m.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			if got := m.Lookup("node"); got != core.NetworkAuto {
				t.Errorf("lookup in a bad file: %q", got)
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), tt.warn) {
				t.Errorf("no %q warning: %q", tt.warn, logs.String())
			}
			// The next change replaces the bad file.
			if err := m.Remember("node", core.NetworkTCP); err != nil {
				t.Fatal(err)
			}
			if got := m.Lookup("node"); got != core.NetworkTCP {
				t.Errorf("after a change: %q", got)
			}
		})
	}
}

func TestPathMemoryBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "paths")
	m := core.NewPathMemory(path)
	for i := range core.MaxPathEntries + 10 {
		m.TTL = time.Hour + time.Duration(i)*time.Second // later entries expire later
		if err := m.Remember(fmt.Sprintf("n%d", i), core.NetworkTCP); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), " tcp "); n != core.MaxPathEntries {
		t.Errorf("%d entries kept, want %d", n, core.MaxPathEntries)
	}
	if m.Lookup("n0") != core.NetworkAuto || m.Lookup(fmt.Sprintf("n%d", core.MaxPathEntries+9)) != core.NetworkTCP {
		t.Errorf("the entries expiring first should go")
	}
}

// TestDialerRemembersTCP: an auto dial of a node the memory marks tcp gets
// TCP+TLS; of another node, QUIC, watched; a forced network ignores the
// memory.
func TestDialerRemembersTCP(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	mem := core.NewPathMemory("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(network core.Network) core.Conn {
		t.Helper()
		d := &core.Dialer{Network: network, Paths: mem}
		c, err := d.Dial(ctx, n.Addr, "test/a")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CloseWithError(core.CodeNoError, "") })
		return c
	}
	isQUIC := func(c core.Conn) bool { _, ok := c.(core.QUICConn); return ok }
	if c := dial(core.NetworkAuto); !isQUIC(c) {
		t.Errorf("no memory: got TCP")
	}
	if err := mem.Remember(n.ID.String(), core.NetworkTCP); err != nil {
		t.Fatal(err)
	}
	if c := dial(core.NetworkAuto); isQUIC(c) {
		t.Errorf("memory says tcp: got QUIC")
	}
	if c := dial(core.NetworkQUIC); !isQUIC(c) {
		t.Errorf("forced quic: got TCP")
	}
	// The watched QUIC connection has stats and no verdict yet; its
	// loss-bound channel exists but is not ready.
	d := &core.Dialer{Paths: core.NewPathMemory("")}
	c, err := d.Dial(ctx, n.Addr, "test/a")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	if st, ok := core.PathStatsOf(c); !ok || st.Transport != core.NetworkQUIC {
		t.Errorf("PathStatsOf: %+v %v", st, ok)
	}
	ch := d.LossBound(c)
	if ch == nil {
		t.Fatal("QUIC connection not watched")
	}
	select {
	case <-ch:
		t.Error("loss-bound on loopback")
	default:
	}
	if (&core.Dialer{}).LossBound(c) != nil {
		t.Error("a Dialer without Paths watches")
	}
}

// TestDialerFallsBackWhereUDPIsDropped: on a path that drops UDP an auto
// dial has TCP+TLS after QUIC's head start, not after QUIC's timeout, and
// remembers it for five minutes: the next dial tries TCP+TLS first and
// sends no datagram. A forced QUIC dial still fails there.
func TestDialerFallsBackWhereUDPIsDropped(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	relay := coretest.StartRelayTCP(t, n.HostPort, 0)
	relay.DropUDP(true)
	addr, datagrams := n.ID.String()+"@"+relay.Addr, relay.Datagrams
	memFile := filepath.Join(t.TempDir(), "paths")
	mem := core.NewPathMemory(memFile)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := &core.Dialer{Paths: mem, FallbackDelay: 200 * time.Millisecond, QUICTimeout: 20 * time.Second}
	dial := func() time.Duration {
		t.Helper()
		start := time.Now()
		c, err := d.Dial(ctx, addr, "test/a")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.CloseWithError(core.CodeNoError, "") })
		if _, ok := c.(core.QUICConn); ok {
			t.Fatal("got QUIC through a path that drops UDP")
		}
		return time.Since(start)
	}
	if took := dial(); took < 200*time.Millisecond || took > 10*time.Second {
		t.Errorf("first dial took %v: want QUIC's head start (200ms) and a TCP+TLS handshake", took)
	}
	if datagrams() == 0 {
		t.Error("QUIC was not tried first")
	}
	if got := mem.Lookup(n.ID.String()); got != core.NetworkTCP {
		t.Fatalf("memory after the fallback: %q, want tcp", got)
	}
	data, err := os.ReadFile(memFile)
	if err != nil {
		t.Fatal(err)
	}
	var key, network string
	var expiry int64
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, n.ID.String()) {
			fmt.Sscan(line, &key, &network, &expiry)
		}
	}
	if left := time.Until(time.Unix(expiry, 0)); left < 4*time.Minute || left > 5*time.Minute+time.Second {
		t.Errorf("remembered for %v, want 5m", left)
	}
	sent := relay.Quiet() // the abandoned QUIC attempt's last datagrams
	dial()
	if datagrams() != sent {
		t.Error("the second dial tried QUIC first")
	}
	quicOnly := &core.Dialer{Network: core.NetworkQUIC, QUICTimeout: 300 * time.Millisecond}
	if c, err := quicOnly.Dial(ctx, addr, "test/a"); err == nil {
		c.CloseWithError(core.CodeNoError, "")
		t.Error("a forced QUIC dial got through")
	}
}

// TestDialerForgetsTCPThatFails: a node remembered for TCP+TLS whose TCP+TLS
// fails while QUIC gets through is dialled over QUIC, and forgotten.
func TestDialerForgetsTCPThatFails(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	relay := coretest.StartRelay(t, n.HostPort, 0) // UDP only: TCP is refused there
	mem := core.NewPathMemory("")
	if err := mem.Remember(n.ID.String(), core.NetworkTCP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := &core.Dialer{Paths: mem}
	c, err := d.Dial(ctx, n.ID.String()+"@"+relay.Addr, "test/a")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	if _, ok := c.(core.QUICConn); !ok {
		t.Error("got TCP+TLS where TCP is refused")
	}
	if got := mem.Lookup(n.ID.String()); got != core.NetworkAuto {
		t.Errorf("memory %q after TCP+TLS failed, want it forgotten", got)
	}
}

// TestDialerAutoKeepsQUIC: where both transports answer, an auto dial gets
// QUIC, with the default head start and with none, and remembers nothing.
func TestDialerAutoKeepsQUIC(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	mem := core.NewPathMemory("")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, delay := range []time.Duration{0, -1} {
		d := &core.Dialer{Paths: mem, FallbackDelay: delay}
		c, err := d.Dial(ctx, n.Addr, "test/a")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.(core.QUICConn); !ok {
			t.Errorf("head start %v: got TCP+TLS", delay)
		}
		if got := mem.Lookup(n.ID.String()); got != core.NetworkAuto {
			t.Errorf("head start %v: memory %q after QUIC won", delay, got)
		}
		_ = c.CloseWithError(core.CodeNoError, "")
	}
}
