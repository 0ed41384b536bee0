package nat

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/netns"
)

// TestReachBench: a short run of the reach measurement measures both paths,
// the head's CPU, and prints the three goal lines; it leaves no namespace.
func TestReachBench(t *testing.T) {
	NeedNAT(t)
	bin := alknetBin(t)
	res, err := RunReach(benchtest.TestContext(t), bin, ReachOptions{Bytes: 4 << 20, Runs: 1})
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][]float64{"direct down": res.DirectDown, "direct up": res.DirectUp,
		"relayed down": res.RelayedDown, "relayed up": res.RelayedUp} {
		if len(v) != 1 || v[0] <= 0 {
			t.Errorf("%s: %v, want one positive rate", name, v)
		}
	}
	if len(res.DirectCall) != 1 || len(res.RelayedCall) != 1 || res.RelayedBits != 2*8*(4<<20) || res.HeadCPU <= 0 {
		t.Errorf("result %+v: want a call per path, 2 × 4 MiB relayed, the head's CPU time", res)
	}
	var out bytes.Buffer
	WriteReachMarkdown(&out, res, nil)
	t.Log(out.String())
	for _, g := range []string{"goal reach-relay-throughput ns ratio ", "goal reach-relay-connect ns ratio ", "goal reach-relay-cpu ns ratio "} {
		if !strings.Contains(out.String(), g) {
			t.Errorf("no %q line", g)
		}
	}
	left, err := netns.List(NSPrefix + strconv.Itoa(os.Getpid()) + "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range left {
		if !strings.HasSuffix(name, "-probe") {
			t.Errorf("namespace left: %s", name)
		}
	}
}
