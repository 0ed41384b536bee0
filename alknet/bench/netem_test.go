package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// needLinkEmulator skips t unless the emulator can run here: Linux, root
// and /dev/net/tun. Where those are, a missing ip command fails the test
// with ALKNET_REQUIRE_INTEROP=1 (CI installs iproute2) and skips it
// otherwise.
func needLinkEmulator(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("link emulator: needs Linux network namespaces and TUN devices")
	}
	if os.Geteuid() != 0 {
		t.Skip("link emulator: needs root for network namespaces and TUN devices")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("link emulator: no TUN device: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		if os.Getenv("ALKNET_REQUIRE_INTEROP") == "1" {
			t.Fatalf("link emulator: %v (ALKNET_REQUIRE_INTEROP=1; install iproute2)", err)
		}
		t.Skipf("link emulator: %v (install iproute2)", err)
	}
}

// startLink starts a link for t and closes it at the end.
func startLink(t *testing.T, p LinkProfile) *Link {
	t.Helper()
	l, err := StartLink(testContext(t), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		assertNoNamespaces(t)
	})
	return l
}

// assertNoNamespaces fails t if a namespace of this process is left.
func assertNoNamespaces(t *testing.T) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	mine := linkNSPrefix + strconv.Itoa(os.Getpid()) + "-"
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, mine) {
			t.Errorf("namespace left after Close: %s", line)
		}
	}
}

// TestLinkEmulatorWAN: on the wan profile the emulator proves itself:
// RTT within 1 ms of 40 ms, one TCP connection at >= 85 % of 200 Mbit/s.
// A miss is measured once more on the same link before it fails the
// test: the test process shares a small machine with others.
func TestLinkEmulatorWAN(t *testing.T) {
	needLinkEmulator(t)
	l := startLink(t, ProfileWAN)
	for attempt := 1; ; attempt++ {
		r, err := l.Verify(testContext(t), VerifyOptions{TCPDuration: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("RTT %v (%d/%d probes), TCP %.1f Mbit/s (%.2f of the rate), late mean %v max %v, stats %+v",
			r.RTT, r.RTTAnswered, r.RTTProbes, r.TCPBps/1e6, r.RateRatio(), r.Stats.AToB.MeanLate(), r.Stats.AToB.LateMax, r.Stats)
		if err := r.Err(); err == nil {
			return
		} else if attempt == 2 {
			t.Fatal(err)
		} else {
			t.Logf("attempt %d: %v", attempt, err)
		}
	}
}

// TestLinkEmulatorLoss: the loss a receiver sees is the profile's, within
// the tolerance Verify allows.
func TestLinkEmulatorLoss(t *testing.T) {
	needLinkEmulator(t)
	for _, tc := range []struct {
		p       LinkProfile
		packets int
	}{
		{ProfileLossy, 20000},
		{ProfileBursty, 50000},
	} {
		t.Run(tc.p.Name, func(t *testing.T) {
			p := tc.p
			p.Seed = 17
			l := startLink(t, p)
			sent, got, err := l.MeasureLoss(testContext(t), tc.packets)
			if err != nil {
				t.Fatal(err)
			}
			loss, want, tol := 1-float64(got)/float64(sent), p.MeanLoss(), lossTolerance(p, sent)
			st := l.Stats().AToB
			t.Logf("sent %d, received %d: loss %.3f%% (want %.3f%% ±%.3f%%); emulator: read %d, lost %d, burst-lost %d, queue %d",
				sent, got, 100*loss, 100*want, 100*tol, st.Read, st.Lost, st.BurstLost, st.Queue)
			if math.Abs(loss-want) > tol {
				t.Errorf("loss %.3f%%, want %.3f%% ±%.3f%%", 100*loss, 100*want, 100*tol)
			}
			if st.Queue+st.Overflow+st.TooBig > 0 {
				t.Errorf("drops other than loss: %+v", st)
			}
			if p.GE == nil && st.BurstLost > 0 || p.GE != nil && st.Lost > 0 {
				t.Errorf("losses counted under the wrong cause: %+v", st)
			}
		})
	}
}

// TestLinkEmulatorNamespaces: the namespaces have the documented addresses
// and routes, commands and Go code run in them, a crashed run's
// namespaces are removed at the next start, and Close removes everything
// (checked by startLink's cleanup).
func TestLinkEmulatorNamespaces(t *testing.T) {
	needLinkEmulator(t)
	pidMax, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(pidMax)))
	if err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s%d-1-a", linkNSPrefix, n+1) // no process has this pid
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", stale).Run() })

	l := startLink(t, LinkProfile{Name: "plain", RTT: 2 * time.Millisecond})
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); strings.Contains(string(out), stale) {
		t.Errorf("stale namespace %s not removed", stale)
	}
	for _, side := range []Side{SideA, SideB} {
		out, err := l.Command(side, "ip", "-4", "-o", "addr", "show", "dev", LinkDevice).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", side, err, out)
		}
		if !strings.Contains(string(out), l.Addr(side).String()+"/32") {
			t.Errorf("side %v: %s lacks %v", side, out, l.Addr(side))
		}
		out, err = l.Command(side, "ip", "-4", "route", "show").CombinedOutput()
		if err != nil || !strings.Contains(string(out), l.Prefix(1-side).String()) {
			t.Errorf("side %v: routes %s lack %v (%v)", side, out, l.Prefix(1-side), err)
		}
	}
	var inA string
	if err := l.Do(SideA, func() error {
		b, err := os.Readlink("/proc/thread-self/ns/net")
		inA = b
		return err
	}); err != nil {
		t.Fatal(err)
	}
	host, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if inA == host {
		t.Errorf("Do ran in the host namespace %s", host)
	}
	if err := l.Do(Side(2), func() error { return nil }); err == nil {
		t.Error("Do accepted side 2")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Do(SideA, func() error { return nil }); err == nil {
		t.Error("Do ran after Close")
	}
}

// TestRunWAN runs the wan scenario on one cheap profile with a transfer
// of its own and checks the report: if the profile verified, the
// transfer ran on the link and its goal is met; if not, nothing ran and
// the profile is reported skipped with the goal missed. The goal line
// is last.
func TestRunWAN(t *testing.T) {
	needLinkEmulator(t)
	p := LinkProfile{Name: "cheap", RTT: 10 * time.Millisecond, RateBps: 50e6}
	var ran []string
	probe := WANTransfer{Name: "probe", Run: func(ctx context.Context, l *Link) (float64, error) {
		ran = append(ran, l.Namespace(SideA))
		return 1e6, nil
	}}
	results, err := RunWAN(testContext(t), WANConfig{Profiles: []LinkProfile{p},
		Verify: VerifyOptions{TCPDuration: time.Second}, Transfers: []WANTransfer{probe}})
	if err != nil {
		t.Fatal(err)
	}
	assertNoNamespaces(t)
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
	if skipped := results[0].Skipped(); skipped != "" {
		t.Logf("the emulator missed on this machine: %s", skipped)
		if len(ran) != 0 || !strings.HasSuffix(last, " missed") || !strings.Contains(report, "| cheap | – | skipped: ") {
			t.Errorf("skipped profile: transfer ran in %v; report as above", ran)
		}
		return
	}
	if len(ran) != 1 || !strings.HasPrefix(ran[0], linkNSPrefix) {
		t.Errorf("transfer ran in %v, want once, with the link's namespaces", ran)
	}
	if !strings.HasSuffix(last, " target >=0.85 met") || !strings.Contains(report, "| cheap | probe | – | 8.0 Mbit/s | 0.160 |") {
		t.Errorf("verified profile: report lacks the met goal or the probe's row")
	}
}
