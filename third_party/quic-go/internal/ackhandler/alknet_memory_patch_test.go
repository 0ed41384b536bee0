package ackhandler

import (
	"testing"
	"unsafe"

	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/wire"
)

// TestSentPacketHistoryShrinksWhenEmpty is alknet's patch 11: the history's
// array grows with the packets in flight; once every packet is acknowledged
// or lost, the history goes back to the array it started with, so a
// connection idle after a burst no longer refers to the grown one (which
// a slice of its last slots kept alive before).
func TestSentPacketHistoryShrinksWhenEmpty(t *testing.T) {
	for _, tc := range []struct {
		name     string
		inFlight int
		lose     bool // the last packet is declared lost instead of acknowledged
	}{
		{"burst acknowledged", 1000, false},
		{"burst, last lost", 1000, true},
		{"small", 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newSentPacketHistory()
			start := unsafe.SliceData(h.packets[:1])
			pn := protocol.PacketNumber(0)
			send := func(n int) (first protocol.PacketNumber) {
				first = pn
				for range n {
					h.SentPacket(pn, &packet{EncryptionLevel: protocol.Encryption1RTT, Frames: []Frame{{Frame: &wire.PingFrame{}}}})
					pn++
				}
				return first
			}
			first := send(tc.inFlight)
			grown := unsafe.Slice(unsafe.SliceData(h.packets), cap(h.packets))
			for p := first; p < pn-1; p++ {
				if err := h.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			if tc.lose {
				h.DeclareLost(pn - 1)
			} else if err := h.Remove(pn - 1); err != nil {
				t.Fatal(err)
			}
			if h.Len() != 0 || h.HasOutstandingPackets() {
				t.Fatalf("history holds %d packets after all left", h.Len())
			}
			at := uintptr(unsafe.Pointer(unsafe.SliceData(h.packets[:1])))
			lo := uintptr(unsafe.Pointer(unsafe.SliceData(grown)))
			if len(grown) > historyCap && at >= lo && at < lo+uintptr(len(grown))*unsafe.Sizeof(grown[0]) {
				t.Errorf("the empty history still refers to the array of %d packets it grew to", len(grown))
			}
			if unsafe.SliceData(h.packets[:1]) != start {
				t.Error("the empty history is not back at its first array")
			}
			// It still works: a keep-alive after the burst.
			p := send(1)
			if got, _ := h.FirstOutstanding(protocol.Encryption1RTT.PacketNumberSpace()); got != p {
				t.Errorf("first outstanding %d, want %d", got, p)
			}
			if err := h.Remove(p); err != nil {
				t.Fatal(err)
			}
		})
	}
}
