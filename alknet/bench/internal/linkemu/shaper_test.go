package linkemu

import (
	"math"
	"testing"
	"time"
)

// TestShaperRateAndQueue: packets leave the rate limiter back to back at
// the rate, a full drop-tail queue drops, and the delay follows.
func TestShaperRateAndQueue(t *testing.T) {
	const ms = int64(time.Millisecond)
	// 8 Mbit/s: a 1000-byte packet takes 1 ms; 10 ms each way.
	base := Config{Delay: 10 * time.Millisecond, RateBps: 8e6, MTU: 1000}
	type arrival struct {
		at   int64
		want int64 // release time, or -1 for a queue drop
	}
	for _, tc := range []struct {
		name    string
		bytes   int
		packets int
		arrive  []arrival
	}{
		{"bytes", 3000, 0, []arrival{{0, 11 * ms}, {0, 12 * ms}, {0, 13 * ms}, {0, -1}, {0, -1}, {ms, 14 * ms}, {10 * ms, 21 * ms}}},
		{"packets", 100000, 2, []arrival{{0, 11 * ms}, {0, 12 * ms}, {0, -1}, {ms, 13 * ms}, {ms, -1}, {3 * ms, 14 * ms}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base
			p.QueueBytes, p.QueuePackets = tc.bytes, tc.packets
			s := newShaper(p, 1)
			for i, a := range tc.arrive {
				rel, cause := s.admit(a.at, 1000, false)
				if a.want < 0 {
					if cause != dropQueue {
						t.Errorf("packet %d at %v: released at %v, want a queue drop", i, time.Duration(a.at), time.Duration(rel))
					}
					continue
				}
				if cause != dropNone || rel != a.want {
					t.Errorf("packet %d at %v: release %v cause %d, want %v", i, time.Duration(a.at), time.Duration(rel), cause, time.Duration(a.want))
				}
			}
		})
	}
}

// TestShaperJitterKeepsOrder: jitter varies the delay within its bounds
// but never reorders; packets further apart than the jitter's spread get
// its whole range.
func TestShaperJitterKeepsOrder(t *testing.T) {
	p := Config{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, MTU: 1500}
	for _, gap := range []time.Duration{100 * time.Microsecond, 20 * time.Millisecond} {
		s := newShaper(p, 7)
		var last, lo, hi int64 = 0, math.MaxInt64, 0
		for i := range 10000 {
			now := int64(i) * int64(gap)
			rel, cause := s.admit(now, 100, false)
			if cause != dropNone {
				t.Fatalf("dropped: %d", cause)
			}
			if rel < last {
				t.Fatalf("gap %v: packet %d released at %v before its predecessor at %v", gap, i, rel, last)
			}
			last = rel
			lo, hi = min(lo, rel-now), max(hi, rel-now)
		}
		if lo < int64(5*time.Millisecond) || hi > int64(15*time.Millisecond) {
			t.Errorf("gap %v: one-way delays in [%v, %v], outside [5ms, 15ms]", gap, time.Duration(lo), time.Duration(hi))
		}
		if gap > 10*time.Millisecond && hi-lo < int64(9*time.Millisecond) {
			t.Errorf("gap %v: one-way delays in [%v, %v], want spread over [5ms, 15ms]", gap, time.Duration(lo), time.Duration(hi))
		}
	}
}

// TestShaperLoss: random loss and the Gilbert-Elliott model lose their
// mean fraction, the latter in bursts; suspended loss loses nothing.
func TestShaperLoss(t *testing.T) {
	const n = 1000000
	// bench's lossy and bursty profiles, without a rate (no queue: every
	// drop is a loss).
	lossy := Config{Delay: 30 * time.Millisecond, Loss: 0.01}
	bursty := Config{Delay: 30 * time.Millisecond, GE: &GilbertElliott{P: 0.02 * 0.1 / 0.98, R: 0.1, LossBad: 0.5}}
	for _, tc := range []struct {
		name      string
		p         Config
		noLoss    bool
		want      float64
		minBurst  float64 // mean length of a run of losses, at least
		wantCause dropCause
	}{
		{name: "lossy", p: lossy, want: 0.01, minBurst: 1, wantCause: dropLoss},
		{name: "bursty", p: bursty, want: 0.01, minBurst: 1.5, wantCause: dropBurst},
		{name: "suspended", p: bursty, noLoss: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newShaper(tc.p, 3)
			lost, runs, prevLost := 0, 0, false
			for i := range n {
				_, cause := s.admit(int64(i), 100, tc.noLoss)
				isLost := cause != dropNone
				if isLost && cause != tc.wantCause {
					t.Fatalf("cause %d, want %d", cause, tc.wantCause)
				}
				if isLost {
					lost++
					if !prevLost {
						runs++
					}
				}
				prevLost = isLost
			}
			got := float64(lost) / n
			if math.Abs(got-tc.want) > 0.15*tc.want || tc.want == 0 && lost > 0 {
				t.Errorf("lost %.4f, want %.4f", got, tc.want)
			}
			if runs > 0 && float64(lost)/float64(runs) < tc.minBurst {
				t.Errorf("mean burst %.2f losses, want >= %.1f", float64(lost)/float64(runs), tc.minBurst)
			}
		})
	}
}
