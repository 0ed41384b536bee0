package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// waitCount waits until re matches the node's log at least count times.
func (n *testNode) waitCount(t *testing.T, re string, count int) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if len(rx.FindAllString(n.logText(), -1)) >= count {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log never matched %q %d times:\n%s", re, count, n.logText())
}

// TestPeersManageLive edits the peers of a running node's config with the
// peers commands and checks each change takes effect at once, through the
// node's reload, and that the file keeps its comments.
func TestPeersManageLive(t *testing.T) {
	cdir, cid := clientID(t)
	const notes = "# operator's notes: keep me\n"
	n := startNode(t, notes+fmt.Sprintf("[[peers]]\nid = \"client\" # the laptop\nkeys = [%q]\n", cid))
	cfg := filepath.Join(n.dir, "alknet.toml")
	perf := func() error {
		_, _, err := runErr(t, "", "perf", n.addr, "--bytes", "1000", "--data-dir", cdir)
		return err
	}
	reloads := 0
	admin := func(args ...string) string {
		t.Helper()
		out := run(t, "", append(args, "--data-dir", n.dir)...)
		reloads++
		n.waitCount(t, `msg="config reloaded"`, reloads)
		return out
	}
	if perf() == nil {
		t.Fatal("perf without the scope succeeded")
	}
	steps := []struct {
		args    []string
		perfOK  bool
		printed string
	}{
		{[]string{"peers", "grant", "client", "perf", "call:route"}, true, "scopes now: perf, call:route"},
		{[]string{"peers", "revoke", "client", "perf"}, false, "scopes now: call:route"},
		{[]string{"peers", "grant", "client", "perf"}, true, "scopes now: call:route, perf"},
		{[]string{"peers", "disable", "client"}, false, "disabled"},
		{[]string{"peers", "enable", "client"}, true, "enabled"},
	}
	for _, s := range steps {
		if out := admin(s.args...); !strings.Contains(out, s.printed) {
			t.Errorf("%v printed %q, want %q", s.args, out, s.printed)
		}
		if err := perf(); (err == nil) != s.perfOK {
			t.Fatalf("after %v: perf error %v, want success %v", s.args, err, s.perfOK)
		}
	}

	// Adding the same key under another name points to grant.
	_, stderr, err := runErr(t, "", "peers", "add", "again", cid, "--scope", "admin", "--data-dir", n.dir)
	if err == nil || !strings.Contains(stderr, `belongs to peer "client"`) || !strings.Contains(stderr, "alknet peers grant client") {
		t.Errorf("peers add of a known key: %v, %q", err, stderr)
	}
	// Revoking a scope the peer lacks changes nothing.
	if _, stderr, err := runErr(t, "", "peers", "revoke", "client", "admin", "--data-dir", n.dir); err == nil || !strings.Contains(stderr, `does not hold scope "admin"`) {
		t.Errorf("revoke of a scope not held: %v, %q", err, stderr)
	}
	// A scope the node refuses is not written.
	if _, stderr, err := runErr(t, "", "peers", "grant", "client", "bad scope", "--data-dir", n.dir); err == nil || !strings.Contains(stderr, "invalid scope") {
		t.Errorf("grant of a malformed scope: %v, %q", err, stderr)
	}

	var list []struct {
		ID      string
		Enabled bool
		Scopes  []string
		Keys    []string
	}
	if err := json.Unmarshal([]byte(run(t, "", "peers", "list", "--json", "--data-dir", n.dir)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != "client" || !list[0].Enabled || strings.Join(list[0].Scopes, " ") != "call:route perf" || list[0].Keys[0] != cid {
		t.Errorf("peers list --json: %+v", list)
	}
	if out := run(t, "", "peers", "list", "--data-dir", n.dir); !regexp.MustCompile(`(?m)^client\s+enabled\s+call:route,perf\s+\S+`).MatchString(out) {
		t.Errorf("peers list printed %q", out)
	}
	if out := run(t, "", "peers", "show", "client", "--data-dir", n.dir); !strings.Contains(out, "key     "+cid) {
		t.Errorf("peers show printed %q", out)
	}

	admin("peers", "rm", "client")
	if perf() == nil {
		t.Error("perf of a removed peer succeeded")
	}
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if string(text) != notes {
		t.Errorf("after rm the file is %q, want only the notes", text)
	}
	if _, stderr, err := runErr(t, "", "peers", "show", "client", "--data-dir", n.dir); err == nil || !strings.Contains(stderr, `no peer "client"`) {
		t.Errorf("show of a removed peer: %v, %q", err, stderr)
	}
}

// TestPeersDisableClosesLiveConnection: disabling a peer closes its open
// connection at once.
func TestPeersDisableClosesLiveConnection(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"client\"\nkeys = [%q]\n", cid))
	cmd := exec.Command(bin, "call", n.addr, "sys/ticks", `{"count":1000,"interval":"50ms"}`, "--data-dir", cdir)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The first tick shows the subscription is live.
	first := make([]byte, 1)
	if _, err := io.ReadFull(stdout, first); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	start := time.Now()
	run(t, "", "peers", "disable", "client", "--data-dir", n.dir)
	select {
	case <-done:
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closing took %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the disabled peer's connection is still open:\n%s", n.logText())
	}
	n.waitLog(t, `connection revoked.*id=client`)
}

func TestTokenListRevoke(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alknet.toml"), "# tokens\n")
	tok := strings.TrimSpace(run(t, "", "token", "create", "--name", "ci", "--scope", "perf", "--data-dir", dir))
	run(t, "", "token", "create", "--name", "deploy", "--expires", "1h", "--data-dir", dir)
	var list []struct {
		Name    string
		Scopes  []string
		Expires *time.Time
		Enabled bool
	}
	out := run(t, "", "token", "list", "--json", "--data-dir", dir)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "ci" || list[0].Expires != nil || !list[0].Enabled || list[1].Expires == nil {
		t.Errorf("token list --json: %s", out)
	}
	if table := run(t, "", "token", "list", "--data-dir", dir); strings.Contains(table, tok) || !regexp.MustCompile(`(?m)^ci\s+enabled\s+never\s+perf$`).MatchString(table) {
		t.Errorf("token list printed %q", table)
	}
	if out := run(t, "", "token", "revoke", "ci", "--data-dir", dir); !strings.Contains(out, `revoked token "ci"`) {
		t.Errorf("revoke printed %q", out)
	}
	if out := run(t, "", "token", "list", "--data-dir", dir); strings.Contains(out, "ci ") || !strings.Contains(out, "deploy") {
		t.Errorf("after revoke, list printed %q", out)
	}
	if _, stderr, err := runErr(t, "", "token", "revoke", "ci", "--data-dir", dir); err == nil || !strings.Contains(stderr, `"ci"`) {
		t.Errorf("second revoke: %v %q", err, stderr)
	}
	if text, _ := os.ReadFile(filepath.Join(dir, "alknet.toml")); !strings.HasPrefix(string(text), "# tokens\n") {
		t.Errorf("comment lost: %q", text)
	}
}

func TestKnownNodes(t *testing.T) {
	dir := t.TempDir()
	_, a := clientID(t)
	_, b := clientID(t)
	file := filepath.Join(dir, "known_nodes")
	writeFile(t, file, fmt.Sprintf("# trusted\nhead.example:4433 %s\nhead.example:5000 %s\nother.example:1 %s\n[::1]:4433 %s\n", a, a, b, b))
	var list []struct {
		Addr, NodeID string
	}
	if err := json.Unmarshal([]byte(run(t, "", "known-nodes", "list", "--json", "--data-dir", dir)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 4 || list[3].Addr != "[::1]:4433" || list[3].NodeID != b {
		t.Errorf("list: %+v", list)
	}
	for _, tc := range []struct {
		arg, left string
		removed   int
	}{
		{"other.example:1", fmt.Sprintf("# trusted\nhead.example:4433 %s\nhead.example:5000 %s\n[::1]:4433 %s\n", a, a, b), 1},
		{"[::1]", fmt.Sprintf("# trusted\nhead.example:4433 %s\nhead.example:5000 %s\n", a, a), 1},
		{a, "# trusted\n", 2},
	} {
		out := run(t, "", "known-nodes", "rm", tc.arg, "--data-dir", dir)
		if strings.Count(out, "removed ") != tc.removed {
			t.Errorf("rm %s printed %q", tc.arg, out)
		}
		if got, _ := os.ReadFile(file); string(got) != tc.left {
			t.Errorf("after rm %s the file is %q, want %q", tc.arg, got, tc.left)
		}
	}
	if _, stderr, err := runErr(t, "", "known-nodes", "rm", "nowhere", "--data-dir", dir); err == nil || !strings.Contains(stderr, `matches "nowhere"`) {
		t.Errorf("rm of nothing: %v %q", err, stderr)
	}
}

// TestConfigCheckReportsEveryProblem: config check lists every problem of
// a file, each with file:line:column and key, then their count.
func TestConfigCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bad.toml")
	writeFile(t, file, "[services]\ndisable = [\"nope\"]\n[limits]\nmax_conns = \"many\"\nbogus = 1\n[client]\nnetwork = \"udp\"\n[git]\nmax_pack_bytes = -1\n")
	_, stderr, err := runErr(t, "", "config", "check", file)
	if exitCode(err) != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	want := []string{
		file + ":4:13: limits.max_conns: ",
		file + ":5:1: limits.bogus: unknown key",
		file + ":2:1: services.disable: unknown service \"nope\"",
		file + ":7:1: client.network ",
		file + ":9:1: git.max_pack_bytes: -1 is negative",
		file + ": 5 problems",
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	for _, w := range want {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("no line starting %q in:\n%s", w, stderr)
		}
	}
	// In the file's order, as a compiler reports.
	var positions []int
	for _, l := range lines[:len(lines)-1] {
		line, _ := problemPos(file, l)
		positions = append(positions, line)
	}
	if !slices.IsSorted(positions) {
		t.Errorf("problems not in the file's order:\n%s", stderr)
	}
	if len(lines) != len(want) {
		t.Errorf("%d lines, want %d:\n%s", len(lines), len(want), stderr)
	}
}
