package nat

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
)

// startTestRig starts a rig for t on a new topology of the two NAT kinds
// given (the worker behind the first, the client behind the second) and
// stops it at the end.
func startTestRig(t *testing.T, worker, client Kind) *Rig {
	t.Helper()
	NeedNAT(t)
	NeedTools(t, "ssh-keygen")
	bin := alknetBin(t)
	top := StartTestTopology(t, worker, client)
	r, err := StartRig(benchtest.TestContext(t), bin, top, RigOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

// alknetBin is $ALKNET_BIN, or else the alknet binary built once from
// this tree.
func alknetBin(t *testing.T) string {
	if bin := os.Getenv("ALKNET_BIN"); bin != "" {
		return bin
	}
	return benchtest.BuildAlknetOnce(t)
}

// checkIsAlknet fails t unless process pid runs bin (and not `ip netns
// exec`, which execs the command it is given).
func checkIsAlknet(t *testing.T, pid int, bin string) {
	t.Helper()
	exe, err := os.Readlink("/proc/" + itoa(pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.EvalSymlinks(bin)
	if err != nil {
		t.Fatal(err)
	}
	if exe != want {
		t.Fatalf("process %d runs %s, want %s", pid, exe, want)
	}
}

// newMarker is a string no process has seen before.
func newMarker(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "alknet-marker-" + hex.EncodeToString(b[:])
}

// echo calls sys/echo with message through the alknet CLI in the client's
// home, with the extra arguments, and returns what the callee saw.
func echoArgs(addr, message string, extra ...string) []string {
	in, _ := json.Marshal(map[string]string{"message": message})
	return append([]string{"call", addr, "sys/echo", string(in)}, extra...)
}

// directTimeout bounds a dial expected to fail: long enough for a reachable
// node on these links to answer many times over.
const directTimeout = 5 * time.Second

// TestReachRig: the worker behind a NAT joined the head outbound; a client
// behind another NAT reaches it through the head (a call the head routes,
// and the same call relayed with --via), and not directly: neither at its
// private address nor at its NAT's public one.
// The control calls the worker directly from its own home, so the direct
// failures are the NATs' doing, not a wrong address or key.
func TestReachRig(t *testing.T) {
	r := startTestRig(t, Cone, Symmetric)
	ctx := benchtest.TestContext(t)
	out, err := r.Alknet(ctx, 0, "", echoArgs(r.HeadAddr, "through the head", "--peer", "worker")...)
	if err != nil {
		t.Fatalf("routed call: %v", err)
	}
	var echo map[string]string
	if err := json.Unmarshal(out, &echo); err != nil || echo["message"] != "through the head" || echo["forwardedFor"] != rigPeer {
		t.Errorf("routed sys/echo printed %q", out)
	}

	_, port, err := net.SplitHostPort(strings.SplitN(r.WorkerAddr, "@", 2)[1])
	if err != nil {
		t.Fatal(err)
	}
	behindNAT := r.WorkerID + "@" + net.JoinHostPort(r.Top.Sites[0].Outer.String(), port)
	var wg sync.WaitGroup
	for _, addr := range []string{r.WorkerAddr, behindNAT} {
		wg.Go(func() {
			if out, err := r.Alknet(ctx, directTimeout, "", echoArgs(addr, "direct")...); err == nil {
				t.Errorf("a direct call from the other home to %s worked: %s", addr, out)
			}
		})
	}
	wg.Wait()
	if out, err := r.Alknet(ctx, 0, "", echoArgs(r.WorkerID, "relayed", r.Via()...)...); err != nil {
		t.Fatalf("relayed call: %v\n%s", err, out)
	}
	// Control: from the worker's own home the direct call works.
	name, args := wrap(r.Top.Sites[0].Home, r.Bin, append(echoArgs(r.WorkerAddr, "next door"), "--data-dir", r.ClientDir)...)
	if out, err := runIn(ctx, name, args...); err != nil {
		t.Fatalf("control: a direct call from the worker's home failed: %v\n%s", err, out)
	}
}

// TestReachByNodeID: given only the worker's NodeID and a resolver (the
// head, where the worker publishes), the client finds the way alone: the
// worker's signed record names its private address, which the client
// cannot reach, and the head as via, which it can.
func TestReachByNodeID(t *testing.T) {
	r := startTestRig(t, Cone, Symmetric)
	ctx := benchtest.TestContext(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := r.Alknet(ctx, 0, "", "resolve", "--json", "--resolver", r.HeadAddr, r.WorkerID)
		var rec struct{ Via []string }
		if err == nil && json.Unmarshal(out, &rec) == nil && len(rec.Via) == 1 {
			if rec.Via[0] != r.HeadAddr {
				t.Fatalf("the record's via is %v, want %s", rec.Via, r.HeadAddr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record with via on the head: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	out, err := r.Alknet(ctx, 0, "", echoArgs(r.WorkerID, "found", "--resolver", r.HeadAddr)...)
	if err != nil {
		t.Fatalf("call by NodeID: %v\n%s", err, out)
	}
	// The direct route to the private address goes first and fails only
	// when its QUIC attempt times out (3 s: an unreachable network's ICMP
	// does not end it), within core's 5 s bound on a direct route that a
	// relayed one backs.
	took := time.Since(start)
	t.Logf("call by NodeID took %v", took)
	if took > 10*time.Second {
		t.Errorf("call by NodeID took %v: the direct attempt should give way to the relay within 5 s", took)
	}
	var echo map[string]string
	if err := json.Unmarshal(out, &echo); err != nil || echo["caller"] != rigPeer || echo["message"] != "found" {
		t.Errorf("sys/echo by NodeID printed %q", out)
	}
}
