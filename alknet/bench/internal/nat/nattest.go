package nat

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/netns"
)

// NeedNAT skips t unless the topology can be built here: Linux, root,
// network namespaces with nf_tables in them, the ip and nft commands.
// Where root is, a missing command or a namespace that cannot be made or
// filtered fails the test with ALKNET_REQUIRE_INTEROP=1 (CI installs
// iproute2 and nftables and runs as root) and skips it otherwise.
func NeedNAT(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("nat: needs Linux network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("nat: needs root for network namespaces and nftables")
	}
	if err := probe(); err != nil {
		if os.Getenv("ALKNET_REQUIRE_INTEROP") == "1" {
			t.Fatalf("nat: %v (ALKNET_REQUIRE_INTEROP=1)", err)
		}
		t.Skipf("nat: %v", err)
	}
}

// NeedTools skips t unless the stock clients names are installed; with
// ALKNET_REQUIRE_INTEROP=1 a missing one fails it instead.
func NeedTools(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			if os.Getenv("ALKNET_REQUIRE_INTEROP") == "1" {
				t.Fatalf("nat: %v (ALKNET_REQUIRE_INTEROP=1)", err)
			}
			t.Skipf("nat: %v", err)
		}
	}
}

var (
	probeOnce sync.Once
	probeErr  error
)

// probe checks once that ip and nft exist and that a namespace can be
// made and given an nftables NAT table.
func probe() error {
	probeOnce.Do(func() {
		for tool, pkg := range map[string]string{"ip": "iproute2", "nft": "nftables"} {
			if _, err := exec.LookPath(tool); err != nil {
				probeErr = fmt.Errorf("%w (install %s)", err, pkg)
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ns, err := netns.Add(ctx, fmt.Sprintf("%s%d-0-probe", NSPrefix, os.Getpid()))
		if err != nil {
			probeErr = fmt.Errorf("no network namespace: %w", err)
			return
		}
		defer ns.Close()
		cmd := ns.Command(ctx, "nft", "-f", "-")
		cmd.Stdin = bytes.NewReader([]byte(ruleset(Symmetric, devWAN)))
		if out, err := cmd.CombinedOutput(); err != nil {
			probeErr = fmt.Errorf("nftables NAT in a namespace: %w: %s", err, bytes.TrimSpace(out))
		}
	})
	return probeErr
}

// StartTestTopology starts a topology for t and removes it at the end,
// checking that none of its namespaces is left.
func StartTestTopology(t *testing.T, kinds ...Kind) *Topology {
	t.Helper()
	top, err := Start(benchtest.TestContext(t), kinds...)
	if err != nil {
		t.Fatal(err)
	}
	closeTestTopology(t, top)
	return top
}

// StartTestAcross starts a topology around the link l for t (see
// [StartAcross]) and removes it at the end, before the link.
func StartTestAcross(t *testing.T, l *netem.Link, worker, client Kind) *Topology {
	t.Helper()
	top, err := StartAcross(benchtest.TestContext(t), l, worker, client)
	if err != nil {
		t.Fatal(err)
	}
	closeTestTopology(t, top)
	return top
}

// closeTestTopology closes top when t ends, checking that none of its
// namespaces is left.
func closeTestTopology(t *testing.T, top *Topology) {
	t.Cleanup(func() {
		if err := top.Close(); err != nil {
			t.Error(err)
		}
		left, err := netns.List(top.base)
		if err != nil {
			t.Error(err)
		}
		for _, name := range left {
			t.Errorf("namespace left after Close: %s", name)
		}
	})
}
