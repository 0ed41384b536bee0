package wan

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/gitbench"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// TestReportTransfers runs every group of the real-path report once, with
// tiny sizes, across a cheap emulated link (servers in B, clients in A)
// and checks that each transfer measured something within the link's
// rate, and that the report ends with every goal line. It needs root, TUN,
// OpenSSH (sshd, ssh, sftp), iperf3 and git, and skips without them.
func TestReportTransfers(t *testing.T) {
	netem.NeedLinkEmulator(t)
	for _, tool := range []string{"sshd", "ssh", "sftp", "ssh-keygen", "iperf3", "git"} {
		if _, err := harness.LookTool(tool); err != nil {
			t.Skip(err)
		}
	}
	bin := os.Getenv("ALKNET_BIN")
	if bin == "" {
		bin = benchtest.BuildAlknetOnce(t) // shared with the other tests of the run
	}
	p := netem.LinkProfile{Name: "cheap", RTT: 10 * time.Millisecond, RateBps: 50e6}
	ts, err := ReportTransfers(ReportConfig{
		Binary: bin, Bytes: 1 << 20, ForwardTime: time.Second,
		gitRepo: gitbench.SmallGitRepo, GitCache: t.TempDir(), callDuration: 200 * time.Millisecond, callCallers: 4,
		timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Eleven transfers with five tools: 10-20 s on an idle machine, over
	// 30 s (benchtest.TestContext) at a load of 15.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	results, err := RunWAN(ctx, WANConfig{Profiles: []netem.LinkProfile{p},
		Verify: netem.VerifyOptions{TCPDuration: time.Second}, Transfers: ts})
	t.Logf("ran in %v", time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	netem.AssertNoNamespaces(t)
	if s := results[0].skipped(); s != "" {
		t.Skipf("the emulator missed its self-check on this machine: %s", s)
	}
	var out strings.Builder
	WriteWANMarkdown(&out, results, nil)
	report := out.String()
	t.Log(report)
	got := map[string]bool{}
	for _, tr := range results[0].transfers {
		got[tr.name] = true
		switch {
		case tr.err != nil:
			t.Errorf("%s: %v", tr.name, tr.err)
		case tr.latency && (tr.bytesPerSec < p.RTT.Seconds() || tr.bytesPerSec > 5):
			t.Errorf("%s: p50 %v, want at least the RTT %v", tr.name, tr.bytesPerSec, p.RTT)
		case !tr.latency && (tr.bytesPerSec <= 0 || tr.bytesPerSec*8 > 1.1*float64(p.RateBps)):
			t.Errorf("%s: %.1f Mbit/s over a %d Mbit/s link", tr.name, tr.bytesPerSec*8/1e6, p.RateBps/1e6)
		}
	}
	lines := strings.Split(strings.TrimSpace(report), "\n")
	tail := lines[len(lines)-len(reportGoals):]
	for i, g := range reportGoals {
		if !got[g.num] || !got[g.den] {
			t.Errorf("goal %s: transfers %s, %s did not run", g.name, g.num, g.den)
		}
		if want := "goal " + g.name + " cheap ratio "; !strings.HasPrefix(tail[i], want) {
			t.Errorf("goal line %d is %q, want %q...", i, tail[i], want)
		}
	}
}

// TestReportTransfersBadConfig: a report without a binary or with an
// unknown group is refused before anything runs.
func TestReportTransfersBadConfig(t *testing.T) {
	for _, cfg := range []ReportConfig{
		{},
		{Binary: "alknet", Groups: []string{"sftp", "smtp"}},
	} {
		if _, err := ReportTransfers(cfg); err == nil {
			t.Errorf("%+v was accepted", cfg)
		}
	}
}

// TestByLoss: the paired transfers run the full size on a clean path and
// the lossy one on a path with loss, and mismatched pairs are refused.
func TestByLoss(t *testing.T) {
	mk := func(name string, v float64) WANTransfer {
		return WANTransfer{name: name, run: func(context.Context, *netem.Link) (float64, error) { return v, nil }}
	}
	ts, err := ByLoss([]WANTransfer{mk("a", 1), mk("b", 2)}, []WANTransfer{mk("a", 10), mk("b", 20)}, "big", "small")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		p    netem.LinkProfile
		want []float64
		work string
	}{
		{netem.LinkProfile{Name: "clean"}, []float64{1, 2}, "big"},
		{netem.LinkProfile{Name: "random", Loss: 0.01}, []float64{10, 20}, "small"},
		{netem.LinkProfile{Name: "bursty", GE: &netem.GilbertElliott{P: 0.002, R: 0.1, LossBad: 0.5}}, []float64{10, 20}, "small"},
	} {
		l := netem.ProfileOnly(c.p)
		for i, tr := range ts {
			if v, err := tr.run(t.Context(), l); err != nil || v != c.want[i] {
				t.Errorf("%s on %s: %v, %v; want %v", tr.name, c.p.Name, v, err, c.want[i])
			}
			if w := tr.work(c.p); w != c.work {
				t.Errorf("%s on %s: work %q, want %q", tr.name, c.p.Name, w, c.work)
			}
		}
	}
	for _, lossy := range [][]WANTransfer{{mk("a", 1)}, {mk("a", 1), mk("c", 1)}} {
		if _, err := ByLoss([]WANTransfer{mk("a", 1), mk("b", 2)}, lossy, "", ""); err == nil {
			t.Errorf("ByLoss accepted %d lossy transfers named differently", len(lossy))
		}
	}
}
