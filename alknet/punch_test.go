package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPunch: with --via and nothing in the way (the loopback), the head
// punches a direct path: ping says so, sys/echo and an fs push and get
// run on a QUIC connection from the client's own address (the worker logs
// it as such, not as relayed), and --relay-only keeps to the relay.
// Through NATs: alknet/bench/internal/nat (TestReachPunch).
func TestPunch(t *testing.T) {
	cdir, cid := clientID(t)
	wdir, wid := clientID(t)
	head := relayHead(t, wid, cid, "")
	w := relayWorker(t, head, wdir, fmt.Sprintf("[[peers]]\nid = \"dev\"\nkeys = [%q]\nscopes = [\"fs:read\", \"fs:write\"]\n", cid))

	// Both nodes say where they stand in alknet status.
	if out := run(t, "", "status", "--data-dir", w.dir); !strings.Contains(out, "reachable via "+head.addr) {
		t.Errorf("the worker's status does not name its head:\n%s", out)
	}
	if out := run(t, "", "status", "--data-dir", head.dir); !strings.Contains(out, "relaying for 1: "+w.id[:10]) {
		t.Errorf("the head's status does not list the worker:\n%s", out)
	}

	var res pingJSON
	out := run(t, "", "ping", "--via", head.addr, "--data-dir", cdir, "-c", "2", "-i", "10ms", "--json", w.id)
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.RTTsMS) != 2 || res.Lost != 0 {
		t.Fatalf("ping --json printed %q (%v)", out, err)
	}
	if !strings.HasPrefix(res.Path, "direct 127.0.0.1:") || !strings.Contains(res.Path, "(quic), punched via "+head.addr) || res.Node != w.id {
		t.Errorf("ping path %q to %s, want direct (quic), punched via %s", res.Path, res.Node, head.addr)
	}
	out = run(t, "", "ping", "--via", head.addr, "--relay-only", "--data-dir", cdir, "-c", "1", w.id)
	if !strings.Contains(out, "path relay via "+head.addr+"\n") || !strings.Contains(out, "1 replies, 0 lost") {
		t.Errorf("ping --relay-only printed:\n%s", out)
	}

	echo := run(t, "", "call", "--via", head.addr, w.id, "sys/echo", `{"message":"punched"}`, "--data-dir", cdir)
	if !strings.Contains(echo, `"punched"`) {
		t.Errorf("sys/echo over the punched path printed %q", echo)
	}
	tree, _ := fsTree(t)
	root := addQ(t, cdir, tree)[0]
	run(t, "", "fs", "push", "--via", head.addr, "--data-dir", cdir, root, "--to", w.id)
	got := filepath.Join(t.TempDir(), "out")
	run(t, "", "fs", "get", "--via", head.addr, "--data-dir", cdir, "--node", w.id, root, "-o", got)
	sameTree(t, tree, got)
	for _, alpn := range []string{"alknet/call", "alknet/fs"} {
		direct := regexp.MustCompile(`alpn=` + alpn + ` remote_ip=127\.0\.0\.1 node=` + cid[:10])
		if !direct.MatchString(w.logText()) {
			t.Errorf("the worker logged no direct %s connection of the client:\n%s", alpn, w.logText())
		}
	}
}
