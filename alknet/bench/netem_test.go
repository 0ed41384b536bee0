package bench

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// needLinkEmulator skips t unless the emulator can run here: Linux, root,
// /dev/net/tun and the ip command.
func needLinkEmulator(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("link emulator: needs root for network namespaces and TUN devices")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("link emulator: no TUN device: %v", err)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skipf("link emulator: %v", err)
	}
}

// startLink starts a link for t and closes it at the end.
func startLink(t *testing.T, p LinkProfile) *Link {
	t.Helper()
	l, err := StartLink(testContext(t), p)
	if err != nil {
		if errors.Is(err, ErrNoLinkEmulator) {
			t.Skip(err)
		}
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

func TestLinkEmulatorWAN(t *testing.T) {
	needLinkEmulator(t)
	l := startLink(t, ProfileWAN)
	r, err := l.Verify(testContext(t), VerifyOptions{TCPDuration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RTT %v (%d/%d probes), TCP %.1f Mbit/s (%.2f of the rate), late mean %v max %v, stats %+v",
		r.RTT, r.RTTAnswered, r.RTTProbes, r.TCPBps/1e6, r.RateRatio(), r.Stats.AToB.MeanLate(), r.Stats.AToB.LateMax, r.Stats)
	if err := r.Err(); err != nil {
		t.Error(err)
	}
}
