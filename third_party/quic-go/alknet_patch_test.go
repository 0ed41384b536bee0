package quic

import "testing"

// TestClientQueueHoldsMore is alknet's patch 5: a queue holds exactly its
// limit, and a client's connection gets the larger one.
func TestClientQueueHoldsMore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
	}{
		{"server", 256},
		{"client", 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q receivedPacketQueue
			active := &pathReceiver{}
			q.Init(active, tc.limit)
			for i := range tc.limit {
				if !q.Push(receivedPacket{}, active) {
					t.Fatalf("packet %d of %d refused", i+1, tc.limit)
				}
			}
			if q.Push(receivedPacket{}, active) {
				t.Fatalf("packet %d accepted past the limit", tc.limit+1)
			}
		})
	}
}
