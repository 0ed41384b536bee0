package wan

import (
	"os"
	"slices"
	"testing"

	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// TestQUICKnobWindows: on a path whose bandwidth-delay product exceeds
// quic-go's default 6 MiB stream window (ProfileSat: 600 ms, 150 Mbit/s,
// 11 MB), the receive windows core sets lift the best transfer (of two
// rounds, both directions) at least 1.4x above the best with quic-go's
// defaults, which window/RTT caps near 50 Mbit/s once the queue fills.
// Single transfers vary a lot with where slow start ends, hence the best
// of four. Opt-in (ALKNET_BENCH_KNOBS=1; root and TUN): about five
// minutes.
func TestQUICKnobWindows(t *testing.T) {
	netem.NeedLinkEmulator(t)
	if os.Getenv("ALKNET_BENCH_KNOBS") != "1" {
		t.Skip("quic-go knobs on the emulator: set ALKNET_BENCH_KNOBS=1 (about three minutes)")
	}
	knobs := quicKnobs()[:2] // default, windows-16m-24m
	l := netem.StartTestLink(t, profileSat)
	res, err := measureQUICKnobs(t.Context(), l, knobs, 128<<20, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		t.Logf("%s: downloads %v, uploads %v (bytes/s)", r.name, r.down, r.up)
	}
	best := func(r quicKnobResult) float64 { return slices.Max(append(slices.Clone(r.down), r.up...)) }
	if d, w := best(res[0]), best(res[1]); w < 1.4*d {
		t.Errorf("larger windows: best %.1f Mbit/s, not 1.4x the default's %.1f", w*8/1e6, d*8/1e6)
	}
}
