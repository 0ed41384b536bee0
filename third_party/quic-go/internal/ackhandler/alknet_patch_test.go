package ackhandler

import (
	"sync/atomic"
	"testing"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
)

// TestPacketsMissing is alknet's patch 2 (see ALKNET-PATCHES.md at the
// module root): gaps in the peer's 1-RTT packet numbers count as missing,
// and a packet that fills a gap late takes one off.
func TestPacketsMissing(t *testing.T) {
	var missing atomic.Int64
	h := NewReceivedPacketHandler(utils.DefaultLogger)
	h.CountMissing(&missing)
	now := monotime.Now()
	for _, step := range []struct {
		pn   protocol.PacketNumber
		want int64
	}{
		{3, 0}, // the first packet: nothing before it counts
		{4, 0},
		{5, 0},
		{8, 2}, // 6 and 7 missing
		{7, 1}, // 7 arrives late
		{9, 1},
		{13, 4}, // 10, 11, 12 missing
		{6, 3},
		{10, 2},
	} {
		if err := h.ReceivedPacket(step.pn, protocol.ECNNon, protocol.Encryption1RTT, now, true); err != nil {
			t.Fatal(err)
		}
		if got := missing.Load(); got != step.want {
			t.Fatalf("after packet %d: %d missing, want %d", step.pn, got, step.want)
		}
	}
}
