package wan

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// TestPathChoiceOnEmulator: on the heavyloss profile (5 %) a first alknet
// perf over QUIC finds it bound by loss and remembers TCP+TLS, and the
// next command uses TCP+TLS at >= 5x QUIC's goodput; on the lossy profile
// (1 %, which quic-go's patched NewReno tolerates) QUIC moves at least
// 0.15 of the rate (NewReno alone: 0.06; 8 MiB is mostly slow start) and
// both runs stay on it. Needs root and TUN (skipped with a message
// elsewhere); about a minute.
func TestPathChoiceOnEmulator(t *testing.T) {
	netem.NeedLinkEmulator(t)
	if testing.Short() {
		t.Skip("path choice on the emulator: about a minute")
	}
	bin := benchtest.BuildAlknetOnce(t)
	for _, p := range []netem.LinkProfile{netem.ProfileHeavyLoss, netem.ProfileLossy} {
		t.Run(p.Name, func(t *testing.T) {
			l := netem.StartTestLink(t, p)
			ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
			defer cancel()
			// Random loss is random, for the kernel's TCP too: at 5 % a
			// TCP+TLS run on a loaded machine once moved 3.5x QUIC's
			// goodput (CI, 9.2 against 2.6 Mbit/s). A ratio under the goal
			// gets a second draw, each on fresh state; two in a row fail.
			var r pathChoiceResult
			for attempt := 0; ; attempt++ {
				start := time.Now()
				var err error
				r, err = measurePathChoice(ctx, l, bin, 8<<20)
				if errors.Is(err, errFirstOnTCP) && attempt < 2 {
					t.Logf("%v; once more", err)
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s in %v: first run QUIC %.1f Mbit/s (switched %v), next run %s %.1f Mbit/s",
					p.Name, time.Since(start).Round(time.Millisecond), r.quic*8/1e6, r.switched, r.transport, r.next*8/1e6)
				if want := pathChoiceWant(l.Profile()); r.transport != want || r.switched != (want == "tcp+tls") {
					t.Fatalf("next run used %s (switched %v), want %s", r.transport, r.switched, want)
				}
				if r.transport != "tcp+tls" || r.next >= pathChoiceGoalLossy*r.quic || attempt == 1 {
					break
				}
				t.Logf("TCP+TLS under %dx QUIC in this draw; once more", pathChoiceGoalLossy)
			}
			if r.transport == "tcp+tls" && r.next < pathChoiceGoalLossy*r.quic {
				t.Errorf("TCP+TLS %.1f Mbit/s, not %dx QUIC's %.1f in two draws", r.next*8/1e6, pathChoiceGoalLossy, r.quic*8/1e6)
			}
			if r.transport == "quic" && r.quic*8 < 0.15*float64(p.RateBps) {
				t.Errorf("QUIC %.1f Mbit/s on %s: under 0.15 of the rate, as if random loss cut its window", r.quic*8/1e6, p.Name)
			}
		})
	}
}

// TestFSGetSwitchesOnEmulator: `alknet fs get --node` of 24 MiB on the
// heavyloss profile finds QUIC bound by loss, goes on over TCP+TLS without
// fetching again what it has, and writes the right bytes; over QUIC alone
// it would take over a minute. Needs root and TUN.
func TestFSGetSwitchesOnEmulator(t *testing.T) {
	netem.NeedLinkEmulator(t)
	if testing.Short() {
		t.Skip("fs get on the emulator: about 30 s")
	}
	bin := benchtest.BuildAlknetOnce(t)
	l := netem.StartTestLink(t, netem.ProfileHeavyLoss)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	content := make([]byte, 24<<20)
	rand.Read(content)
	file := filepath.Join(dir, "content")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	var root string
	client, addr := startNodeInB(ctx, t, l, bin, "fs:read", func(server string) error {
		_, _, out, err := harness.TimeCommand(ctx, bin, "fs", "add", "-q", "--data-dir", server, file)
		root = strings.TrimSpace(string(out))
		return err
	})
	node, _, _ := strings.Cut(addr, "@")
	got := filepath.Join(dir, "got")
	start := time.Now()
	out, err := harness.RunChild(ctx, 45*time.Second, "", "ip", "netns", "exec", l.Namespace(netem.SideA),
		bin, "fs", "get", "--data-dir", client, "--node", addr, root, "-o", got)
	t.Logf("fs get of 24 MiB in %v: %s", time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.Contains(string(out), raceLostLog):
		// At 5 % loss QUIC's handshake can lose a flight or two, and
		// with them the dial's race: the get ran on TCP+TLS throughout.
		t.Log("the dial went to TCP+TLS: nothing to switch")
	case !strings.Contains(string(out), "going on over TCP+TLS"):
		t.Errorf("fs get did not switch: %s", out)
	}
	if data, err := os.ReadFile(got); err != nil || !bytes.Equal(data, content) {
		t.Errorf("fs get wrote %d bytes (%v), want the 24 MiB added", len(data), err)
	}
	if paths, _ := os.ReadFile(filepath.Join(client, "paths")); !strings.Contains(string(paths), node+" tcp ") {
		t.Errorf("paths file: %q", paths)
	}
}

// startNodeInB runs `alknet serve` in l's namespace B on a fresh data dir
// whose one peer, a fresh client data dir, has scope; prepare runs on the
// node's data dir first. It returns the client's data dir and the node's
// pinned address; the node stops when the test ends.
func startNodeInB(ctx context.Context, t *testing.T, l *netem.Link, bin, scope string, prepare func(server string) error) (client, addr string) {
	t.Helper()
	n, err := startWANNode(ctx, l, bin, t.TempDir(), []string{scope}, prepare)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.stop() })
	return n.client, n.addr
}

// TestPipeRemembersOnEmulator: `alknet pipe` (what sftp, ssh and git use
// through ProxyCommand) uploading 6 MiB on the heavyloss profile keeps its QUIC
// connection but records TCP+TLS for the node, and the next pipe dials
// TCP+TLS. Needs root and TUN; about 30 s.
func TestPipeRemembersOnEmulator(t *testing.T) {
	netem.NeedLinkEmulator(t)
	if testing.Short() {
		t.Skip("pipe on the emulator: about 20 s")
	}
	bin := benchtest.BuildAlknetOnce(t)
	l := netem.StartTestLink(t, netem.ProfileHeavyLoss)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client, addr := startNodeInB(ctx, t, l, bin, "perf", nil)
	node, _, _ := strings.Cut(addr, "@")
	// An alknet/perf request: 8 bytes of how much to send back, then the
	// upload.
	req := func(upload int) string {
		return string([]byte{0, 0, 0, 0, 0, 0, 0x10, 0}) + strings.Repeat("u", upload)
	}
	pipe := func(upload int) []byte {
		t.Helper()
		start := time.Now()
		out, err := harness.RunChild(ctx, time.Minute, req(upload), "ip", "netns", "exec", l.Namespace(netem.SideA),
			bin, "pipe", "--alpn", "alknet/perf", "--data-dir", client, "--log-level", "debug", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("pipe of %d bytes in %v", upload, time.Since(start).Round(time.Millisecond))
		if !bytes.Contains(out, bytes.Repeat([]byte{0}, 4096)) {
			t.Fatalf("pipe output: %d bytes", len(out))
		}
		return out
	}
	// Random loss is random: now and then a pipe's QUIC beats NewReno's
	// ceiling by more than the judge's factor (quic-go patch 3 tolerates
	// random loss), and then nothing is to be remembered. 6 MiB give the
	// judge a dozen windows, and another pipe is another draw; three such
	// runs in a row would be a failure (two 4 MiB pipes in a row at 4.5
	// Mbit/s, above the judge's 3 Mbit/s there, failed one CI run).
	for attempt := 0; ; attempt++ {
		pipe(6 << 20)
		paths, _ := os.ReadFile(filepath.Join(client, "paths"))
		if strings.Contains(string(paths), node+" tcp ") {
			break
		}
		if attempt == 2 {
			t.Fatalf("paths file after three lossy pipes: %q", paths)
		}
		t.Logf("QUIC was not judged loss-bound in this pipe; once more")
	}
	// The next pipe goes over TCP+TLS, as its debug log says (its time
	// says little: TCP at 5 % loss on a loaded machine took 6 s where the
	// loss-bound QUIC took 9).
	if out := pipe(4 << 20); !bytes.Contains(out, []byte("transport=tcp+tls")) {
		t.Errorf("second pipe not on TCP+TLS: %s", harness.LastLines(string(bytes.ReplaceAll(out, []byte{0}, nil)), 10))
	}
}
