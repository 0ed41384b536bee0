package netem

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/netns"
)

// NeedLinkEmulator skips t unless the emulator can run here: Linux, root
// and /dev/net/tun. Where those are, a missing ip command fails the test
// with ALKNET_REQUIRE_INTEROP=1 (CI installs iproute2) and skips it
// otherwise.
func NeedLinkEmulator(t *testing.T) {
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

// StartTestLink starts a link for t and closes it at the end.
func StartTestLink(t *testing.T, p LinkProfile) *Link {
	t.Helper()
	l, err := StartLink(benchtest.TestContext(t), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		AssertNoNamespaces(t)
	})
	return l
}

// AssertNoNamespaces fails t if a namespace of this process is left.
func AssertNoNamespaces(t *testing.T) {
	t.Helper()
	left, err := netns.List(LinkNSPrefix + strconv.Itoa(os.Getpid()) + "-")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range left {
		t.Errorf("namespace left after Close: %s", name)
	}
}

// ProfileOnly is a Link that is not running, with profile p, for tests of
// code that only reads [Link.Profile].
func ProfileOnly(p LinkProfile) *Link { return &Link{profile: p} }
