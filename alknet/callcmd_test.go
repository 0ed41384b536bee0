package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
)

func TestCallAndOpsCommands(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\n", cid))
	out := run(t, "", "call", n.addr, "sys/echo", `{"message":"hello"}`, "--data-dir", cdir)
	var echo map[string]string
	if err := json.Unmarshal([]byte(out), &echo); err != nil || echo["message"] != "hello" || echo["caller"] != "me" {
		t.Errorf("sys/echo printed %q", out)
	}
	out = run(t, "", "call", n.addr, "sys/ticks", `{"count":3,"interval":"10ms"}`, "--data-dir", cdir)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(lines[2], `"tick":3`) {
		t.Errorf("sys/ticks printed %q", out)
	}
	// services/info advertises the messaging key record beside the NodeID.
	out = run(t, "", "call", n.addr, "services/info", "--data-dir", cdir)
	var info struct {
		NodeID string            `json:"nodeId"`
		Keys   map[string]string `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || info.NodeID != n.id || !strings.HasPrefix(info.Keys["msg"], "alkmsgkey1:") {
		t.Errorf("services/info printed %q", out)
	}
	out = run(t, "", "ops", n.addr, "--data-dir", cdir)
	for _, op := range []string{"sys/info", "sys/echo", "sys/ticks", "services/list"} {
		if !strings.Contains(out, op) {
			t.Errorf("ops lacks %s:\n%s", op, out)
		}
	}
	_, stderr, err := runErr(t, "", "call", n.addr, "sys/nothing", "--data-dir", cdir)
	if err == nil || !strings.Contains(stderr, "NOT_FOUND") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("unknown op: err %v, stderr %q", err, stderr)
	}
	// An anonymous-looking caller (unknown key) may not call sys/echo.
	odir, other := clientID(t)
	if _, stderr, err := runErr(t, "", "call", n.addr, "sys/echo", `{"message":"x"}`, "--data-dir", odir); err == nil || !strings.Contains(stderr, "does not know your key "+other) {
		t.Errorf("unknown key: err %v, stderr %q", err, stderr)
	}
}

// TestHeadAndWorkerProcesses: a worker joins a head with serve --join and
// the CLI reaches it through the head with --peer.
func TestHeadAndWorkerProcesses(t *testing.T) {
	cdir, cid := clientID(t)
	wdir, wid := clientID(t) // the worker's data dir, with its key made
	head := startNode(t, fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\nscopes = [\"call:route\"]\n\n[[peers]]\nid = \"worker1\"\nkeys = [%q]\nscopes = [\"call:worker\"]\n", cid, wid))
	// By host:port alone: the worker records the head on first use, and
	// says so in its log.
	hostport := strings.SplitN(head.addr, "@", 2)[1]
	worker := startNodeIn(t, wdir, fmt.Sprintf("[[peers]]\nid = \"head\"\nkeys = [%q]\n", head.id), "--join", hostport)
	head.waitLog(t, `call: peer attached.*peer=worker1`)
	worker.waitLog(t, `msg="added node to known nodes" node=`+head.id+` addr=`+regexp.QuoteMeta(hostport))
	out := run(t, "", "call", head.addr, "sys/echo", `{"message":"via head"}`, "--peer", "worker1", "--data-dir", cdir)
	var echo map[string]string
	if err := json.Unmarshal([]byte(out), &echo); err != nil || echo["caller"] != "head" || echo["forwardedFor"] != "me" || echo["message"] != "via head" {
		t.Errorf("routed sys/echo printed %q", out)
	}
	out = run(t, "", "call", head.addr, "sys/ticks", `{"count":2,"interval":"10ms"}`, "--peer", "any", "--data-dir", cdir)
	if strings.Count(out, "tick") != 2 {
		t.Errorf("routed sys/ticks printed %q", out)
	}
	out = run(t, "", "ops", head.addr, "--peers", "--data-dir", cdir)
	if !strings.Contains(out, "[worker1]") {
		t.Errorf("ops --peers:\n%s", out)
	}
}

// TestCallResumesSession: a second alknet command resumes the TLS session
// the first one got (the ticket is kept in the data dir, private), and the
// node still knows the caller by its key.
func TestCallResumesSession(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\n", cid))
	for i, network := range []string{"quic", "quic", "tcp", "tcp"} {
		out := run(t, "", "call", n.addr, "sys/echo", `{"message":"hi"}`, "--network", network, "--data-dir", cdir)
		var echo map[string]string
		if err := json.Unmarshal([]byte(out), &echo); err != nil || echo["caller"] != "me" {
			t.Errorf("call %d over %s: sys/echo printed %q", i, network, out)
		}
		if i%2 == 1 {
			n.waitLog(t, `msg="tls session resumed" alpn=\S+ remote_ip=127.0.0.1 node=`+regexp.QuoteMeta(cid[:8]))
		}
	}
	if got := strings.Count(n.logText(), "tls session resumed"); got != 2 {
		t.Errorf("node logged %d resumptions, want 2 (the second call of each network)", got)
	}
	if fi, err := os.Stat(filepath.Join(cdir, sessionsFile)); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestOpsShowsOneOperation: `ops ADDR OP` shows the operation's access,
// input schema and an example call that the node accepts.
func TestOpsShowsOneOperation(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\n", cid))
	out := run(t, "", "ops", n.addr, "sys/echo", "--data-dir", cdir)
	for _, want := range []string{"sys/echo (query): ", "access: any known key or token", "input schema:\n", `"message"`, "example:\n  alknet call " + n.addr + " sys/echo '"} {
		if !strings.Contains(out, want) {
			t.Errorf("ops sys/echo lacks %q:\n%s", want, out)
		}
	}
	m := regexp.MustCompile(`alknet call \S+ sys/echo '(.*)'\n`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no example call:\n%s", out)
	}
	if _, stderr, err := runErr(t, "", "call", n.addr, "sys/echo", m[1], "--data-dir", cdir); err != nil {
		t.Errorf("the example input %s: %v %s", m[1], err, stderr)
	}
	var spec struct{ Name, Type string }
	if err := json.Unmarshal([]byte(run(t, "", "ops", n.addr, "sys/ticks", "--json", "--data-dir", cdir)), &spec); err != nil || spec.Name != "sys/ticks" || spec.Type != "subscription" {
		t.Errorf("ops sys/ticks --json: %+v %v", spec, err)
	}
	if _, stderr, err := runErr(t, "", "ops", n.addr, "sys/nothing", "--data-dir", cdir); err == nil || !strings.Contains(stderr, "NOT_FOUND") {
		t.Errorf("ops of an unknown operation: %v %q", err, stderr)
	}
}

// TestCallWhereUDPStops: `alknet call` sends its calls with a resumed
// QUIC handshake; when UDP stops getting through after the ticket was
// issued, the command still answers, over the TCP+TLS connection that won
// the race after the head start, and the next one goes there without
// trying QUIC.
func TestCallWhereUDPStops(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\n", cid))
	relay := coretest.StartRelayTCP(t, strings.SplitN(n.addr, "@", 2)[1], 20*time.Millisecond)
	addr := n.id + "@" + relay.Addr
	echo := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		out := run(t, "", "call", addr, "sys/echo", `{"message":"hi"}`, "--data-dir", cdir)
		var echo map[string]string
		if err := json.Unmarshal([]byte(out), &echo); err != nil || echo["caller"] != "me" || echo["message"] != "hi" {
			t.Fatalf("%s: sys/echo printed %q", what, out)
		}
		return time.Since(start)
	}
	echo("the first call")
	echo("the resumed call")
	n.waitLog(t, `msg="early data accepted" alpn=alknet/call`)

	relay.Quiet()
	relay.DropUDP(true)
	if took := echo("the call where UDP stopped"); took < time.Second || took > 8*time.Second {
		t.Errorf("the call where UDP stopped took %v: want QUIC's head start (1s) and a TCP+TLS handshake", took)
	}
	if got := relay.TCPConns(); got != 1 {
		t.Errorf("%d TCP connections for the call where UDP stopped, want the fallback's one, used again", got)
	}
	if paths, err := os.ReadFile(filepath.Join(cdir, "paths")); err != nil || !strings.Contains(string(paths), n.id+" tcp ") {
		t.Errorf("the data dir's path memory: %q (%v), want the node on tcp", paths, err)
	}
	sent := relay.Quiet()
	echo("the next call")
	if relay.Datagrams() != sent {
		t.Error("the next call tried QUIC first")
	}
}
