package wan

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// TestRunWAN runs the wan scenario on one cheap profile with a transfer
// of its own and checks the report: if the profile verified, the
// transfer ran on the link and its goal is met; if not, nothing ran and
// the profile is reported skipped with the goal missed. The goal line
// is last.
func TestRunWAN(t *testing.T) {
	netem.NeedLinkEmulator(t)
	p := netem.LinkProfile{Name: "cheap", RTT: 10 * time.Millisecond, RateBps: 50e6}
	var ran []string
	probe := WANTransfer{name: "probe", run: func(ctx context.Context, l *netem.Link) (float64, error) {
		ran = append(ran, l.Namespace(netem.SideA))
		return 1e6, nil
	}}
	results, err := RunWAN(benchtest.TestContext(t), WANConfig{Profiles: []netem.LinkProfile{p},
		Verify: netem.VerifyOptions{TCPDuration: time.Second}, Transfers: []WANTransfer{probe}})
	if err != nil {
		t.Fatal(err)
	}
	netem.AssertNoNamespaces(t)
	var out strings.Builder
	WriteWANMarkdown(&out, results, nil)
	report := out.String()
	t.Log(report)
	if len(results) != 1 {
		t.Fatalf("%d results, want 1", len(results))
	}
	lines := strings.Split(strings.TrimSpace(report), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "goal emulator-tcp cheap ratio ") {
		t.Fatalf("last line %q, want the emulator-tcp goal", last)
	}
	if skipped := results[0].skipped(); skipped != "" {
		t.Logf("the emulator missed on this machine: %s", skipped)
		// The emulator-tcp goal judges the rate alone: a profile skipped
		// for its RTT (a loaded machine) may still have met it.
		if len(ran) != 0 || !strings.Contains(report, "| cheap | – | skipped: ") {
			t.Errorf("skipped profile: transfer ran in %v; report as above", ran)
		}
		return
	}
	if len(ran) != 1 || !strings.HasPrefix(ran[0], netem.LinkNSPrefix) {
		t.Errorf("transfer ran in %v, want once, with the link's namespaces", ran)
	}
	if !strings.HasSuffix(last, " target >=0.85 met") || !strings.Contains(report, "| cheap | probe | – | 8.0 Mbit/s | 0.160 |") {
		t.Errorf("verified profile: report lacks the met goal or the probe's row")
	}
}
