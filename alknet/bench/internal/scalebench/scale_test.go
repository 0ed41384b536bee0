package scalebench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/core"
)

// binary is $ALKNET_BIN or the alknet binary built from this tree.
func binary(t *testing.T) string {
	if bin := os.Getenv("ALKNET_BIN"); bin != "" {
		return bin
	}
	return benchtest.BuildAlknetOnce(t)
}

// TestScaleSmoke runs every part with tiny sizes against real `alknet
// serve` nodes and checks what each measured: every connection open and
// alive and the node's memory read, routed calls answered through heads
// with every worker attached, fs ls listing every entry and git ls-remote
// every ref; and that the report ends with the goal lines.
func TestScaleSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs alknet serve")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	bin := binary(t)
	var rep Report
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		r, err := MeasureConns(ctx, ConnsOptions{Binary: bin, Network: network, N: 20, Idle: 500 * time.Millisecond, Deadline: time.Minute})
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		t.Logf("%s: %d open, %d alive, RSS %d -> %d KiB, %.1f KiB per connection", network, r.Open, r.Alive, r.Before>>10, r.After>>10, r.PerConn()/1024)
		if r.Open != 20 || r.Alive != 20 || r.Refused != 0 || r.Before == 0 || r.After == 0 {
			t.Errorf("%s: %+v, want 20 connections open and alive and both RSS read", network, r)
		}
		rep.Conns = append(rep.Conns, r)
	}
	ws, err := MeasureWorkers(ctx, WorkersOptions{Binary: bin, Workers: []int{1, 3}, Rounds: 2, Calls: 10})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range ws {
		t.Logf("%d workers: p50 %v, RSS %d MiB", h.Workers, h.P50(), h.Attached>>20)
		if len(h.Latencies) != 20 || len(h.One) != 20 || h.Attached == 0 || h.After == 0 {
			t.Errorf("%d workers: %d+%d calls, RSS %d/%d, want 20+20 calls and RSS read", h.Workers, len(h.Latencies), len(h.One), h.Attached, h.After)
		}
	}
	rep.Workers = ws
	st, err := MeasureStore(ctx, StoreOptions{Binary: bin, Blocks: []int{10, 100}, Refs: []int{10, 20}, Runs: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		t.Logf("%+v", s)
		switch s.Kind {
		case "fs":
			// The files' blocks, and the directory's.
			if s.Entries != s.Size || s.Blocks != s.Size+1 || s.Ls == 0 || s.GC == 0 {
				t.Errorf("fs %d: %d entries, %d blocks, want %d and %d", s.Size, s.Entries, s.Blocks, s.Size, s.Size+1)
			}
		case "git":
			if s.Listed < s.Size || s.LsRemote == 0 {
				t.Errorf("git %d: listed %d refs", s.Size, s.Listed)
			}
		}
	}
	if len(st) != 4 {
		t.Fatalf("%d store results, want 4", len(st))
	}
	rep.Store = st
	var b strings.Builder
	WriteMarkdown(&b, rep)
	out := b.String()
	t.Log(out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// 2 connection goals, 2 head goals, 3 linearity goals, last.
	for _, l := range lines[len(lines)-7:] {
		if !strings.HasPrefix(l, "goal ") {
			t.Errorf("want the goal lines last, got %q", l)
		}
	}
}
