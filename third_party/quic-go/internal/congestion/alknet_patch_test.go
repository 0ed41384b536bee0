package congestion

import (
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
)

// TestSlowStartSurvivesDelayWhileAppLimited is alknet's patch (see
// ALKNET-PATCHES.md at the module root): RTT samples that rise while the
// sender does not fill its window (it is only receiving, and its ACKs queue
// behind what it receives) must not end slow start; the same samples with
// the window full must.
func TestSlowStartSurvivesDelayWhileAppLimited(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inFlight  func(cwnd protocol.ByteCount) protocol.ByteCount
		slowStart bool // still in slow start after the samples
	}{
		{"app-limited: a few packets in flight", func(protocol.ByteCount) protocol.ByteCount { return 2 * 1200 }, true},
		{"cwnd-limited: the window full", func(cwnd protocol.ByteCount) protocol.ByteCount { return cwnd }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rtt := utils.NewRTTStats()
			c := NewCubicSender(DefaultClock{}, rtt, &utils.ConnectionStats{}, 1200, false, nil)
			rtt.UpdateRTT(40*time.Millisecond, 0)
			// A round of samples 20ms above the minimum: hybrid slow
			// start's delay signal.
			for range 2 * hybridStartMinSamples {
				rtt.UpdateRTT(60*time.Millisecond, 0)
				c.MaybeExitSlowStart(tc.inFlight(c.GetCongestionWindow()))
			}
			if got := c.InSlowStart(); got != tc.slowStart {
				t.Fatalf("in slow start: %v, want %v", got, tc.slowStart)
			}
		})
	}
}

// TestRandomLossKeepsWindow is alknet's patch 3: a loss with no standing
// queue in the RTT and a low loss rate leaves the window alone; a loss with
// the RTT raised by a queue that stands, a loss rate above
// maxToleratedLossRate, or an ECN mark cuts it as before.
func TestRandomLossKeepsWindow(t *testing.T) {
	const mss = 1200
	for _, tc := range []struct {
		name       string
		rtt        func(i int) time.Duration // the RTT sample of the ACK of packet i of 20000 (0.5 ms apart); the minimum is 60 ms
		lossEvery  int                       // one packet in lossEvery is lost
		lostBytes  protocol.ByteCount        // of the last loss (0: an ECN mark)
		keepWindow bool
	}{
		{"random: no queue, 1 % loss", func(int) time.Duration { return 62 * time.Millisecond }, 100, mss, true},
		{"random: the last ACKs held back 25 ms", func(i int) time.Duration {
			if i > 19990 {
				return 85 * time.Millisecond
			}
			return 61 * time.Millisecond
		}, 100, mss, true},
		{"queue: the RTT 25 ms up for the last 100 ms", func(i int) time.Duration {
			if i > 19800 {
				return 85 * time.Millisecond
			}
			return 61 * time.Millisecond
		}, 100, mss, false},
		{"policer: no queue, 5 % loss", func(int) time.Duration { return 60 * time.Millisecond }, 20, mss, false},
		{"ECN mark", func(int) time.Duration { return 60 * time.Millisecond }, 100, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rtt := utils.NewRTTStats()
			c := NewCubicSender(DefaultClock{}, rtt, &utils.ConnectionStats{}, mss, true, nil)
			rtt.UpdateRTT(60*time.Millisecond, 0)
			start := monotime.Now()
			const packets = 20000
			for pn := range protocol.PacketNumber(packets) {
				c.OnPacketSent(0, 0, pn, mss, true)
				if pn%protocol.PacketNumber(tc.lossEvery) == 0 && pn < packets-1 {
					c.OnCongestionEvent(pn, mss, c.GetCongestionWindow())
					continue
				}
				rtt.UpdateRTT(tc.rtt(int(pn)), 0)
				c.OnPacketAcked(pn, mss, c.GetCongestionWindow(), start.Add(time.Duration(pn)*time.Millisecond/2))
			}
			before := c.GetCongestionWindow()
			c.OnCongestionEvent(packets-1, tc.lostBytes, before)
			if kept := c.GetCongestionWindow() == before; kept != tc.keepWindow {
				t.Fatalf("window %d -> %d (loss rate %.3f, standing RTT %v): kept %v, want %v",
					before, c.GetCongestionWindow(), c.lossRate, c.standing.get(), kept, tc.keepWindow)
			}
		})
	}
}

// TestNoQueueGrowsFaster is alknet's patch 3: in congestion avoidance, a
// window the path holds without a queue grows by a quarter per round trip;
// with a standing queue, by one packet, as NewReno.
func TestNoQueueGrowsFaster(t *testing.T) {
	const mss = 1200
	for _, tc := range []struct {
		name     string
		rtt      time.Duration // every sample; the minimum is 60 ms
		min, max float64       // the window's growth over one round trip
	}{
		{"no queue", 61 * time.Millisecond, 1.2, 1.3},
		{"standing queue", 90 * time.Millisecond, 1, 1.04}, // one packet of 32
	} {
		t.Run(tc.name, func(t *testing.T) {
			rtt := utils.NewRTTStats()
			c := NewCubicSender(DefaultClock{}, rtt, &utils.ConnectionStats{}, mss, true, nil)
			rtt.UpdateRTT(60*time.Millisecond, 0)
			c.slowStartThreshold = c.congestionWindow // congestion avoidance
			start := monotime.Now()
			cwnd := c.GetCongestionWindow()
			for pn := range protocol.PacketNumber(cwnd / mss) { // one window, cwnd-limited
				c.OnPacketSent(0, 0, pn, mss, true)
				rtt.UpdateRTT(tc.rtt, 0)
				c.OnPacketAcked(pn, mss, c.GetCongestionWindow(), start.Add(time.Duration(pn)*time.Millisecond))
			}
			growth := float64(c.GetCongestionWindow()) / float64(cwnd)
			if growth < tc.min || growth > tc.max {
				t.Fatalf("window %d -> %d in one round trip: x%.3f, want x%.2f to x%.2f", cwnd, c.GetCongestionWindow(), growth, tc.min, tc.max)
			}
		})
	}
}

// TestPacedWindowKeepsGrowing is alknet's patch 4: a paced bulk sender that
// filled its window within the last round trip grows it, even though part
// of the window is still waiting for the pacer when each ACK arrives; a
// sender that never filled it (the application had no more) does not.
func TestPacedWindowKeepsGrowing(t *testing.T) {
	const mss = 1200
	for _, tc := range []struct {
		name   string
		filled bool // a packet left with the window full in each round trip
		grows  bool
	}{
		{"paced bulk sender", true, true},
		{"application-limited", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rtt := utils.NewRTTStats()
			c := NewCubicSender(DefaultClock{}, rtt, &utils.ConnectionStats{}, mss, true, nil)
			rtt.UpdateRTT(150*time.Millisecond, 0)
			c.slowStartThreshold = c.congestionWindow // congestion avoidance
			start := monotime.Now()
			cwnd := c.GetCongestionWindow()
			for pn := range protocol.PacketNumber(4 * cwnd / mss) { // four round trips
				now := start.Add(time.Duration(pn) * 5 * time.Millisecond)
				inFlight := cwnd - 8*mss // what the pacer has let out when the ACK comes
				if tc.filled && pn%8 == 0 {
					inFlight = cwnd // the pacer caught up
				}
				c.OnPacketSent(now, inFlight, pn, mss, true)
				rtt.UpdateRTT(150*time.Millisecond, 0)
				c.OnPacketAcked(pn, mss, cwnd-8*mss, now)
			}
			if grew := c.GetCongestionWindow() > cwnd; grew != tc.grows {
				t.Fatalf("window %d -> %d: grew %v, want %v", cwnd, c.GetCongestionWindow(), grew, tc.grows)
			}
		})
	}
}
