package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg"
)

// stopNode sends SIGTERM to n and waits until it logged that it stopped.
func stopNode(t *testing.T, n *testNode) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.waitLog(t, `msg=stopped`)
}

// TestStopDrainsFSGet: a node stopped during a large fs get finishes the
// transfer before it closes its store, and exits 0.
func TestStopDrainsFSGet(t *testing.T) {
	const size = 120 << 20
	nodeDir := t.TempDir()
	writeFile(t, filepath.Join(nodeDir, "alknet.toml"), "[fs]\npublic = true\nno_sync = true\n")
	data := make([]byte, size)
	_, _ = rand.Read(data)
	src := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	root := addQ(t, nodeDir, src)[0]
	reader, _ := clientID(t)
	writeFile(t, filepath.Join(reader, "alknet.toml"), "[fs]\nno_sync = true\n")
	n := startNodeIn(t, nodeDir, "")

	out := filepath.Join(t.TempDir(), "copy")
	get := exec.Command(bin, "fs", "get", "--data-dir", reader, "--node", n.addr, root, "-o", out)
	get.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	var stderr bytes.Buffer
	get.Stderr = &stderr
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- get.Wait() }()
	n.waitLog(t, `fs request.*op=get`)
	select {
	case err := <-done:
		t.Fatalf("the get ended (%v) before the node was stopped; the test needs more data", err)
	default:
	}
	stopNode(t, n)
	if err := <-done; err != nil {
		t.Fatalf("fs get during the stop: %v\n%s\nnode log:\n%s", err, stderr.String(), n.logText())
	}
	got, err := os.ReadFile(out)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("the copy differs (%d of %d bytes, %v)", len(got), size, err)
	}
}

// gatedConn holds the first stream's write that passes after bytes back
// until release is closed, signalling held when it does.
type gatedConn struct {
	core.Conn
	after   int
	held    chan struct{}
	release chan struct{}
}

func (c *gatedConn) OpenStream(ctx context.Context) (core.Stream, error) {
	s, err := c.Conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	return &gatedStream{Stream: s, c: c}, nil
}

type gatedStream struct {
	core.Stream
	c       *gatedConn
	written int
	once    sync.Once
}

func (s *gatedStream) Write(p []byte) (int, error) {
	if s.written+len(p) <= s.c.after {
		s.written += len(p)
		return s.Stream.Write(p)
	}
	first := max(s.c.after-s.written, 0) + 1
	n, err := s.Stream.Write(p[:first])
	s.written += n
	if err != nil {
		return n, err
	}
	s.once.Do(func() {
		close(s.c.held)
		<-s.c.release
	})
	m, err := s.Stream.Write(p[first:])
	s.written += m
	return n + m, err
}

// TestStopDrainsMsgSend: a deposit that has begun to arrive when the node
// is told to stop is stored and answered; the node exits 0 and the message
// is in its inbox after a restart.
func TestStopDrainsMsgSend(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := core.NodeIDFromPublicKey(pub)
	config := fmt.Sprintf("[[peers]]\nid = \"client\"\nkeys = [%q]\nscopes = [\"msg:send\"]\n", id.String())
	dir := t.TempDir()
	n := startNodeIn(t, dir, config)
	to, err := core.ParseNodeID(n.id)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := (&core.Dialer{Key: key}).Dial(ctx, n.addr, msg.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	gc := &gatedConn{Conn: conn, after: 1024, held: make(chan struct{}), release: make(chan struct{})}
	s := msg.NewSession(gc)
	defer s.Close()
	body := bytes.Repeat([]byte("in flight at the stop "), 10000)
	sent := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, key, msg.Message{To: to, ContentType: msg.TextType, Body: body})
		sent <- err
	}()
	select {
	case <-gc.held:
	case err := <-sent:
		t.Fatalf("send ended before its deposit was held: %v", err)
	}
	// The request's first bytes are on their way; a round trip on another
	// stream of the connection lets them arrive before the stop.
	if _, err := msg.NewSession(conn).Key(ctx, to); err != nil {
		t.Fatal(err)
	}
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.waitLog(t, `msg="stopping: draining connections"`)
	close(gc.release)
	if err := <-sent; err != nil {
		t.Fatalf("send during the stop: %v\nnode log:\n%s", err, n.logText())
	}
	n.waitLog(t, `msg=stopped`)

	n = startNodeIn(t, dir, config)
	if out := run(t, "", "msg", "read", "--data-dir", dir, "--node", n.addr); !strings.Contains(out, "in flight at the stop") {
		t.Errorf("inbox after the restart: %.200q", out)
	}
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
	d := time.Since(start)
	if d > 4*time.Second {
		t.Errorf("the head took %v to stop", d)
	}
	t.Logf("the head stopped in %v", d)
	head.waitLog(t, `msg="stopping: draining connections" connections=[1-9]\d* workers=1`)
}

// TestReloadGitRulesAndDeletedFile: a reload of the git rules applies
// without a false "restart to apply"; a reload after the file was deleted
// keeps the running config (the peer still gets in) and says why.
func TestReloadGitRulesAndDeletedFile(t *testing.T) {
	cdir, cid := clientID(t)
	peer := fmt.Sprintf("[[peers]]\nid = \"client\"\nkeys = [%q]\n", cid)
	n := startNode(t, peer)
	cfgFile := filepath.Join(n.dir, "alknet.toml")
	writeFile(t, cfgFile, peer+"\n[git.default]\nread_scopes = [\"git:read\"]\n\n[git.repos.site]\npublic = true\n")
	n.waitLog(t, `config reloaded`)
	if strings.Contains(n.logText(), "restart to apply") {
		t.Errorf("a git rules reload asked for a restart:\n%s", n.logText())
	}
	if err := os.Remove(cfgFile); err != nil {
		t.Fatal(err)
	}
	n.waitLog(t, `config reload failed.*keeping the running config`)
	run(t, "", "call", n.addr, "sys/echo", `{"message":"still a peer"}`, "--data-dir", cdir)
}

// TestListenPhaseFailure: a service socket that cannot bind (now bound
// after the build) still stops the start with an error naming the key.
func TestListenPhaseFailure(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "alknet.toml"), fmt.Sprintf("[ssh]\ntcp_listen = %q\n", busy.Addr().String()))
	_, stderr, err := runErr(t, "", "serve", "--data-dir", dir, "--listen", "127.0.0.1:0")
	if err == nil || !strings.Contains(stderr, "ssh.tcp_listen") {
		t.Fatalf("serve with ssh.tcp_listen taken: %v\n%s", err, stderr)
	}
}
