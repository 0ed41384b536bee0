package congestion

import (
	"testing"
	"time"

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
