package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// bin is the alknet binary built for these tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "alknet-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "alknet")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build alknet:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// run runs alknet with args and stdin, failing the test on a non-zero exit.
func run(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := runErr(t, stdin, args...)
	if err != nil {
		t.Fatalf("alknet %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func runErr(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=", "ALKNET_DATA_DIR=")
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// testNode is an `alknet serve` child process.
type testNode struct {
	dir  string
	id   string
	addr string // pinned: <nodeid>@127.0.0.1:port
	cmd  *exec.Cmd

	mu  sync.Mutex
	log bytes.Buffer
}

var listeningRE = regexp.MustCompile(`msg=listening addr=(\S+) node=(\S+)`)

// startNode runs `alknet serve` on a free loopback port with config text
// (none if empty) and stops it with SIGTERM when the test ends, checking it
// exits 0.
func startNode(t *testing.T, config string, args ...string) *testNode {
	t.Helper()
	return startNodeIn(t, t.TempDir(), config, args...)
}

// startNodeIn is startNode with a given data dir.
func startNodeIn(t *testing.T, dir, config string, args ...string) *testNode {
	t.Helper()
	if config != "" {
		writeFile(t, filepath.Join(dir, "alknet.toml"), config)
	}
	n := startCommand(t, append([]string{"serve", "--data-dir", dir, "--listen", "127.0.0.1:0", "--log-level", "debug"}, args...)...)
	n.dir = dir
	m := n.logMatch(t, listeningRE.String())
	n.id, n.addr = m[2], m[2]+"@"+m[1]
	return n
}

// startCommand runs a long-running alknet command, collecting its stderr,
// and stops it with SIGINT when the test ends, checking it exits 0.
func startCommand(t *testing.T, args ...string) *testNode {
	t.Helper()
	return startProcess(t, exec.Command(bin, args...), args[0])
}

// startProcess is startCommand for a prepared command (a wrapper that
// execs alknet, say), named name in failures.
func startProcess(t *testing.T, cmd *exec.Cmd, name string) *testNode {
	t.Helper()
	p := &testNode{cmd: cmd}
	p.cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		timer := time.AfterFunc(20*time.Second, func() { _ = p.cmd.Process.Kill() })
		<-scanned
		err := p.cmd.Wait()
		timer.Stop()
		if err != nil {
			t.Errorf("alknet %s exited with %v:\n%s", name, err, p.logText())
		}
	})
	return p
}

// logMatch waits for the log to match re and returns the submatches.
func (n *testNode) logMatch(t *testing.T, re string) []string {
	t.Helper()
	n.waitLog(t, re)
	return regexp.MustCompile(re).FindStringSubmatch(n.logText())
}

func (n *testNode) logText() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

// waitLog waits until the node's log matches re.
func (n *testNode) waitLog(t *testing.T, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if rx.MatchString(n.logText()) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("log never matched %q:\n%s", re, n.logText())
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// clientID creates a client data dir with `alknet init` and returns it with
// its NodeID.
func clientID(t *testing.T) (dir, id string) {
	dir = t.TempDir()
	out := run(t, "", "init", "--data-dir", dir)
	id = strings.TrimPrefix(strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]), "node ID ")
	if len(id) != 52 {
		t.Fatalf("init printed %q", out)
	}
	return dir, id
}

func perfPeer(id string, enabled bool) string {
	return fmt.Sprintf("[[peers]]\nid = \"client\"\nkeys = [%q]\nscopes = [\"perf\"]\nenabled = %v\n", id, enabled)
}

// perfRequest is the alknet/perf request for n bytes back, then upload.
func perfRequest(n uint64, upload int) string {
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], n)
	return string(hdr[:]) + strings.Repeat("u", upload)
}

func TestPipeCarriesBothWaysAndHalfCloses(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, perfPeer(cid, true))
	for _, network := range []string{"quic", "tcp"} {
		t.Run(network, func(t *testing.T) {
			// The node answers only after our half-close (stdin EOF), and
			// the pipe exits only after the node's EOF.
			out := run(t, perfRequest(300000, 1<<20), "pipe", "--alpn", "alknet/perf", "--network", network, "--data-dir", cdir, n.addr)
			if len(out) != 300000 {
				t.Fatalf("got %d bytes back, want 300000", len(out))
			}
		})
	}
}

// TestFirstUseNotice dials a node by host:port alone: the first use
// records it in known_nodes with one notice on stderr, as OpenSSH's
// "Permanently added"; later uses, and a pinned address, print nothing.
// The bytes on stdout are the same every time.
func TestFirstUseNotice(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, perfPeer(cid, true))
	hostport := strings.SplitN(n.addr, "@", 2)[1]
	notice := fmt.Sprintf("alknet: added node %s at %s to %s\n", n.id, hostport, filepath.Join(cdir, "known_nodes"))
	var first string
	for i, tc := range []struct {
		addr, stderr string
	}{
		{hostport, notice},
		{hostport, ""},
		{n.addr, ""},
	} {
		out, stderr, err := runErr(t, perfRequest(300000, 1<<16), "pipe", "--alpn", "alknet/perf", "--data-dir", cdir, tc.addr)
		if err != nil {
			t.Fatalf("pipe %s (use %d): %v\n%s", tc.addr, i+1, err, stderr)
		}
		if stderr != tc.stderr {
			t.Errorf("use %d of %s: stderr %q, want %q", i+1, tc.addr, stderr, tc.stderr)
		}
		if i == 0 {
			first = out
		}
		if len(out) != 300000 || out != first {
			t.Errorf("use %d: %d bytes on stdout, want the first use's 300000", i+1, len(out))
		}
	}
	entries := run(t, "", "known-nodes", "list", "--data-dir", cdir)
	if strings.Count(entries, n.id) != 1 {
		t.Errorf("known-nodes list:\n%s\nwant one entry of %s", entries, n.id)
	}
	// Forgotten, the node is new again; --json output stays JSON alone.
	run(t, "", "known-nodes", "rm", hostport, "--data-dir", cdir)
	out, stderr, err := runErr(t, "", "perf", hostport, "--bytes", "1000", "--json", "--data-dir", cdir)
	if err != nil || stderr != notice || !json.Valid([]byte(out)) {
		t.Errorf("perf --json after known-nodes rm: %v, stderr %q (want %q), stdout %q", err, stderr, notice, out)
	}
}

func TestPipeFailsWithOneLineReason(t *testing.T) {
	cdir, _ := clientID(t)
	n := startNode(t, "")
	_, other := clientID(t)
	for _, tc := range []struct {
		name, addr, alpn, want string
	}{
		{"wrong pin", other + "@" + strings.SplitN(n.addr, "@", 2)[1], "alknet/perf", "not the pinned"},
		{"unserved alpn", n.addr, "alknet/nothing", "no application protocol"},
		{"bad address", "a:b:c", "alknet/perf", "want [nodeid@]host[:port]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runErr(t, "", "pipe", "--alpn", tc.alpn, "--data-dir", cdir, tc.addr)
			if err == nil {
				t.Fatal("pipe succeeded")
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q: want one line containing %q", stderr, tc.want)
			}
		})
	}
}

func TestPerfCommand(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, perfPeer(cid, true))
	for _, args := range [][]string{
		{"--streams", "1"},
		{"--streams", "3"},
		{"--streams", "2", "--network", "tcp"},
	} {
		out := run(t, "", append([]string{"perf", n.addr, "--bytes", "1000000", "--data-dir", cdir}, args...)...)
		if !strings.Contains(out, "upload") || !strings.Contains(out, "download") {
			t.Errorf("perf %v printed %q", args, out)
		}
	}
	// Without the perf scope the node refuses.
	other, _ := clientID(t)
	if _, _, err := runErr(t, "", "perf", n.addr, "--data-dir", other); err == nil {
		t.Error("perf without the scope succeeded")
	}
	n.waitLog(t, `msg=auth result=reject alpn=alknet/perf remote_ip=127.0.0.1 id=- node=\S{52}`)
}

func TestReloadRevokesAndKeepsOldOnError(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, perfPeer(cid, true))
	cfg := filepath.Join(n.dir, "alknet.toml")

	// A pipe whose stdin stays open keeps its connection live.
	stdin, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	pipe := exec.Command(bin, "pipe", "--alpn", "alknet/perf", "--network", "quic", "--data-dir", cdir, n.addr)
	pipe.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	pipe.Stdin = stdin
	if err := pipe.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- pipe.Wait() }()
	defer w.Close()
	if _, err := w.Write([]byte(perfRequest(10, 0))); err != nil {
		t.Fatal(err)
	}
	n.waitLog(t, `perf|alpn=alknet/perf`) // the connection reached the node
	time.Sleep(200 * time.Millisecond)

	// A broken file is refused with its line; the old config stays.
	writeFile(t, cfg, perfPeer(cid, true)+"bogus = 1\n")
	n.waitLog(t, `config reload failed.*alknet.toml:\d+`)
	select {
	case err := <-done:
		t.Fatalf("pipe ended after a refused reload: %v", err)
	case <-time.After(300 * time.Millisecond):
	}

	// Disabling the peer closes its live connection within a second.
	start := time.Now()
	writeFile(t, cfg, perfPeer(cid, false))
	select {
	case <-done:
		if d := time.Since(start); d > 1500*time.Millisecond {
			t.Errorf("revocation took %v", d)
		}
	case <-time.After(3 * time.Second):
		pipe.Process.Kill()
		t.Fatalf("revoked connection still open after 3s:\n%s", n.logText())
	}
	n.waitLog(t, `connection revoked.*id=client`)
}

func TestInitRestoreAndDerive(t *testing.T) {
	dir := t.TempDir()
	const mnemonic = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
	out := run(t, mnemonic+"\n", "init", "--restore", "--data-dir", dir)
	id := strings.TrimPrefix(strings.TrimSpace(out), "node ID ")
	if len(id) != 52 {
		t.Fatalf("init printed %q", out)
	}
	if strings.Contains(out, "abandon") {
		t.Error("a restored mnemonic was printed again")
	}
	if _, _, err := runErr(t, mnemonic+"\n", "init", "--restore", "--data-dir", dir); err == nil {
		t.Error("init over an existing vault succeeded")
	}
	idOut := run(t, "", "id", "--data-dir", dir)
	lines := strings.Split(strings.TrimSpace(idOut), "\n")
	if len(lines) != 3 || lines[0] != id || !strings.HasPrefix(lines[1], "ssh-ed25519 AAAA") || !strings.HasPrefix(lines[2], "sha256//") {
		t.Errorf("id printed %q", idOut)
	}
	derived := run(t, "", "vault", "derive", "--path", "m/74'/0'/0'", "--data-dir", dir)
	if !strings.Contains(derived, "node ID "+id) {
		t.Errorf("derive of the node key path printed %q, want node ID %s", derived, id)
	}
	// SLIP-0010 test vector 1, master key.
	v := run(t, "", "vault", "derive", "--path", "m", "--seed-hex", "000102030405060708090a0b0c0d0e0f")
	if !strings.Contains(v, "a4b2856bfec510abab89753fac1ac0e1112364e7d250545963f135f2a33188ed") {
		t.Errorf("derive from the test seed printed %q", v)
	}
	if _, stderr, err := runErr(t, "", "vault", "derive", "--path", "m/0", "--seed-hex", "00"); err == nil {
		t.Error("non-hardened path accepted")
	} else if strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("error is not one line: %q", stderr)
	}
	// A bad restore phrase is refused.
	if _, _, err := runErr(t, "abandon abandon\n", "init", "--restore", "--data-dir", t.TempDir()); err == nil {
		t.Error("init accepted a bad phrase")
	}
}

func TestTokenCreate(t *testing.T) {
	dir := t.TempDir()
	out := run(t, "", "token", "create", "--name", "ci", "--scope", "perf", "--expires", "720h", "--data-dir", dir)
	token := strings.TrimSpace(out)
	if !regexp.MustCompile(`^alk_[a-z0-9]{52}$`).MatchString(token) {
		t.Fatalf("token create printed %q", out)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "alknet.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), token) || !strings.Contains(string(cfg), "sha256:") {
		t.Errorf("config holds the token or no hash:\n%s", cfg)
	}
	if _, _, err := runErr(t, "", "token", "create", "--name", "ci", "--data-dir", dir); err == nil {
		t.Error("duplicate token name accepted")
	}
	if out := run(t, "", "config", "check", "--data-dir", dir); !strings.Contains(out, "ok") {
		t.Errorf("config check: %q", out)
	}
	writeFile(t, filepath.Join(dir, "bad.toml"), "[limits]\nmax_conns = \"many\"\n")
	if _, stderr, err := runErr(t, "", "config", "check", filepath.Join(dir, "bad.toml")); err == nil || !strings.Contains(stderr, "bad.toml:2") {
		t.Errorf("config check of a bad file: err %v, stderr %q", err, stderr)
	}
}

func TestFlagsAfterArguments(t *testing.T) {
	app := newApp()
	for _, tc := range []struct{ args, want []string }{
		{
			[]string{"alknet", "peers", "add", "id", "key", "--scope", "perf", "--data-dir=/x"},
			[]string{"alknet", "peers", "add", "--scope", "perf", "--data-dir=/x", "id", "key"},
		},
		{ // ssh: the remote command keeps its flags
			[]string{"alknet", "ssh", "node:1", "--data-dir", "/x", "ls", "-la", "--data-dir", "y"},
			[]string{"alknet", "ssh", "--data-dir", "/x", "node:1", "--", "ls", "-la", "--data-dir", "y"},
		},
		{ // common flags before the command move after it
			[]string{"alknet", "--data-dir", "/x", "--log-level=debug", "peers", "add", "id", "key", "--scope", "perf"},
			[]string{"alknet", "peers", "add", "--data-dir", "/x", "--log-level=debug", "--scope", "perf", "id", "key"},
		},
		{ // unless the command does not take them
			[]string{"alknet", "--data-dir", "/x", "--config", "c", "version"},
			[]string{"alknet", "--data-dir", "/x", "--config", "c", "version"},
		},
		{
			[]string{"alknet", "--version"},
			[]string{"alknet", "--version"},
		},
		{
			[]string{"alknet", "ssh", "node:1", "--", "ls", "-la"},
			[]string{"alknet", "ssh", "node:1", "--", "ls", "-la"},
		},
	} {
		if got := flagsFirst(app, tc.args); strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

// TestPerfTransportChoice: a node the data dir's paths file marks tcp is
// dialled over TCP+TLS, --network and [client] network override it, and a
// bad [client] network is refused.
func TestPerfTransportChoice(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, perfPeer(cid, true))
	node, _, _ := strings.Cut(n.addr, "@")
	writeFile(t, filepath.Join(cdir, "paths"), fmt.Sprintf("%s tcp %d\n", node, time.Now().Add(time.Hour).Unix()))
	for _, tc := range []struct {
		name, config string
		args         []string
		want         string
	}{
		{"remembered", "", nil, "tcp+tls, "},
		{"flag overrides", "", []string{"--network", "quic"}, "quic, "},
		{"config overrides", "[client]\nnetwork = \"quic\"\n", nil, "quic, "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, filepath.Join(cdir, "alknet.toml"), tc.config)
			out := run(t, "", append([]string{"perf", n.addr, "--bytes", "100000", "--data-dir", cdir}, tc.args...)...)
			if !strings.HasPrefix(out, tc.want) {
				t.Errorf("perf printed %q, want it to start %q", out, tc.want)
			}
		})
	}
	writeFile(t, filepath.Join(cdir, "alknet.toml"), "[client]\nnetwork = \"udp\"\n")
	if _, stderr, err := runErr(t, "", "perf", n.addr, "--data-dir", cdir); err == nil || !strings.Contains(stderr, "client.network") {
		t.Errorf("bad client.network: %v, %q", err, stderr)
	}
}
