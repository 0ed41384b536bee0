package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/fs"
)

// stopNode sends SIGTERM to n and waits until it logged that it stopped.
func stopNode(t *testing.T, n *testNode) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.waitLog(t, `msg=stopped`)
}

// freePort returns a loopback TCP port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestFailedBuildClosesWhatItBuilt: when a later service fails to build,
// what the earlier ones opened is closed (the fs store is unlocked), and
// no builder opened a socket (ssh's plain TCP listener binds in the run
// phase).
func TestFailedBuildClosesWhatItBuilt(t *testing.T) {
	dir := t.TempDir()
	sshAddr := freePort(t)
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &fileConfig{}
	cfg.SSH.TCPListen = sshAddr
	cfg.FS.NoSync = true
	d, err := cfg.Directory()
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	n := &node{
		logger: logger, key: key, id: nodeID(key), dataDir: dir, cfg: cfg,
		identities: core.NewLiveDirectory(d, nil), calls: call.NewRegistry(), peers: call.NewPeers(call.First, logger),
	}
	boom := errors.New("boom")
	svcs := []service{
		{"ssh", nil, buildSSH},
		{"fs", nil, buildFS},
		{"boom", nil, func(*node, []string) (part, error) { return part{}, boom }},
	}
	if _, err := build(n, svcs, &lifecycle{logger: logger}); !errors.Is(err, boom) {
		t.Fatalf("build: %v, want boom", err)
	}
	s, err := openStore(cfg.FS.dir(dir), fs.Options{NoSync: true})
	if err != nil {
		t.Fatalf("the fs store after the failed build: %v", err)
	}
	s.Close()
	ln, err := net.Listen("tcp", sshAddr)
	if err != nil {
		t.Fatalf("ssh.tcp_listen's port after the failed build: %v", err)
	}
	ln.Close()
}

// TestStopHeadWithWorker: a head with an attached, idle worker stops as
// soon as its connections are done, saying what it drains.
func TestStopHeadWithWorker(t *testing.T) {
	wdir, wid := clientID(t)
	head := startNode(t, fmt.Sprintf("[[peers]]\nid = \"worker1\"\nkeys = [%q]\nscopes = [\"call:worker\"]\n", wid))
	startNodeIn(t, wdir, fmt.Sprintf("[[peers]]\nid = \"head\"\nkeys = [%q]\n", head.id), "--join", head.addr)
	head.waitLog(t, `call: peer attached.*peer=worker1`)
	start := time.Now()
	stopNode(t, head)
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("the head took %v to stop", d)
	}
	head.waitLog(t, `msg="stopping: draining connections" connections=[1-9]\d* workers=1`)
}
