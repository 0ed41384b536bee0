package wan

import (
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/quic-go/quic-go"
)

// TestSwitchPairOnEmulator runs the two users of startSwitchPair, the
// direction switch and one knob round, with small transfers across a
// cheap emulated path: every transfer moves its bytes and both ends close.
func TestSwitchPairOnEmulator(t *testing.T) {
	netem.NeedLinkEmulator(t)
	l := netem.StartTestLink(t, netem.LinkProfile{Name: "cheap", RTT: 10 * time.Millisecond, RateBps: 50e6})
	res, err := measureDirectionSwitch(t.Context(), l, directionSwitchOptions{bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.freshDown <= 0 || res.up <= 0 || res.downAfterUp <= 0 {
		t.Errorf("direction switch: %+v, want three positive rates", res)
	}
	down, up, err := measureKnob(t.Context(), l, quic.Config{}, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if down <= 0 || up <= 0 {
		t.Errorf("knob: down %v, up %v, want positive rates", down, up)
	}
}
