package core

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// fakePathConn is a Conn whose PathStats grow by step on every call.
type fakePathConn struct {
	Conn // nil: only Context, Logger and PathStats are used
	ctx  context.Context
	mu   sync.Mutex
	st   PathStats
	step PathStats
}

func (c *fakePathConn) Context() context.Context { return c.ctx }
func (c *fakePathConn) Logger() *slog.Logger     { return slog.New(slog.DiscardHandler) }
func (c *fakePathConn) PathStats() PathStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.st.BytesSent += c.step.BytesSent
	c.st.PacketsSent += c.step.PacketsSent
	c.st.PacketsLost += c.step.PacketsLost
	return c.st
}

// TestPathWatch: a connection losing 1 % at a goodput below NewReno's
// ceiling is judged loss-bound within a window or two, TCP is remembered
// for its node, and the verdict stays readable until the connection ends;
// a clean one is judged and never loss-bound.
func TestPathWatch(t *testing.T) {
	tick, window := pathTick, pathWindow
	pathTick, pathWindow = 5*time.Millisecond, 20*time.Millisecond
	t.Cleanup(func() { pathTick, pathWindow = tick, window })
	base := PathStats{Transport: NetworkQUIC, SmoothedRTT: 60 * time.Millisecond}
	for _, tt := range []struct {
		name  string
		step  PathStats
		bound bool
	}{
		{"lossy", PathStats{BytesSent: 50, PacketsSent: 300, PacketsLost: 3}, true},
		{"clean", PathStats{BytesSent: 50, PacketsSent: 300}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			c := &fakePathConn{ctx: ctx, st: base, step: tt.step}
			d := &Dialer{Paths: NewPathMemory("")}
			d.watchPath("node", c)
			lb := d.LossBound(c)
			if lb == nil {
				t.Fatal("not watched")
			}
			if tt.bound {
				select {
				case <-lb:
				case <-time.After(10 * time.Second):
					t.Fatal("never judged loss-bound")
				}
			} else {
				deadline := time.Now().Add(10 * time.Second)
				for {
					if _, ok := d.PathVerdictOf(c); ok || time.Now().After(deadline) {
						break
					}
					time.Sleep(pathTick)
				}
				select {
				case <-lb:
					t.Fatal("clean connection judged loss-bound")
				default:
				}
			}
			v, ok := d.PathVerdictOf(c)
			if !ok || v.LossBound != tt.bound {
				t.Errorf("verdict %v (judged %v), want loss-bound %v", v, ok, tt.bound)
			}
			want := NetworkAuto
			if tt.bound {
				want = NetworkTCP
			}
			if got := d.Paths.Lookup("node"); got != want {
				t.Errorf("remembered %q, want %q", got, want)
			}
			cancel()
			deadline := time.Now().Add(10 * time.Second)
			for d.LossBound(c) != nil {
				if time.Now().After(deadline) {
					t.Fatal("watch outlived its connection")
				}
				time.Sleep(pathTick)
			}
		})
	}
}
