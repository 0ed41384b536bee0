package nat

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/netns"
)

// TestReachBench: a short run of the reach measurement, on plain
// namespaces and across an emulated link, measures both paths and the
// head's CPU, and prints the three goal lines; it leaves no namespace.
func TestReachBench(t *testing.T) {
	NeedNAT(t)
	NeedTools(t, "ssh-keygen")
	bin := alknetBin(t)
	for _, link := range []*netem.LinkProfile{nil, {Name: "cheap", RTT: 10 * time.Millisecond, RateBps: 100e6}} {
		name := reachProfile
		if link != nil {
			name = link.Name
		}
		t.Run(name, func(t *testing.T) {
			if link != nil {
				netem.NeedLinkEmulator(t)
			}
			res, err := RunReach(benchtest.TestContext(t), bin, ReachOptions{Bytes: 4 << 20, Runs: 1, Link: link})
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range map[string][]float64{"direct down": res.DirectDown, "direct up": res.DirectUp,
				"relayed down": res.RelayedDown, "relayed up": res.RelayedUp, "punched down": res.PunchedDown, "punched up": res.PunchedUp} {
				if len(v) != 1 || v[0] <= 0 {
					t.Errorf("%s: %v, want one positive rate", name, v)
				}
			}
			if len(res.DirectCall) != 1 || len(res.RelayedCall) != 1 || len(res.PunchedCall) != 1 || res.RelayedBits != 2*8*(4<<20) || res.HeadCPU <= 0 {
				t.Errorf("result %+v: want a call per path, 2 × 4 MiB relayed, the head's CPU time", res)
			}
			// The paths are what they say: the direct one's bytes go
			// through the public namespace, the relayed one's end at the
			// head there.
			const moved = 2 * 4 << 20
			if c := res.DirectCrossing; c.Forwarded < moved || c.Local > moved/8 {
				t.Errorf("direct perf: the public namespace forwarded %d bytes and took %d, want over %d forwarded", c.Forwarded, c.Local, moved)
			}
			if c := res.RelayedCrossing; c.Local < moved || c.Forwarded > moved/8 {
				t.Errorf("relayed perf: the public namespace forwarded %d bytes and took %d, want over %d taken", c.Forwarded, c.Local, moved)
			}
			if c := res.PunchedCrossing; c.Forwarded < moved || c.Local > moved/8 {
				t.Errorf("punched perf: the public namespace forwarded %d bytes and took %d, want over %d forwarded", c.Forwarded, c.Local, moved)
			}
			if (link != nil) != (res.Verify != nil) {
				t.Errorf("link %v, verified %v", link, res.Verify)
			}
			var out bytes.Buffer
			WriteReachMarkdown(&out, res, nil)
			t.Log(out.String())
			for _, g := range []string{"reach-relay-throughput", "reach-relay-connect", "reach-relay-cpu", "reach-punch-throughput", "reach-punch-connect"} {
				if g = "goal " + g + " " + name + " ratio "; !strings.Contains(out.String(), g) {
					t.Errorf("no %q line", g)
				}
			}
			left, err := netns.List(NSPrefix + strconv.Itoa(os.Getpid()) + "-")
			if err != nil {
				t.Fatal(err)
			}
			for _, ns := range left {
				if !strings.HasSuffix(ns, "-probe") {
					t.Errorf("namespace left: %s", ns)
				}
			}
			netem.AssertNoNamespaces(t)
		})
	}
}
