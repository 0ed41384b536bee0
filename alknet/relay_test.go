package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// relayHead starts a head whose peers are the worker wid (call:worker)
// and the client cid (relay), plus extra config.
func relayHead(t *testing.T, wid, cid, extra string) *testNode {
	t.Helper()
	return startNode(t, fmt.Sprintf("[[peers]]\nid = \"worker\"\nkeys = [%q]\nscopes = [\"call:worker\"]\n\n"+
		"[[peers]]\nid = \"client\"\nkeys = [%q]\nscopes = [\"relay\"]\n\n%s", wid, cid, extra))
}

// relayWorker starts the node of data dir wdir with config, joined to
// head, and waits until the head has registered it for relay.
func relayWorker(t *testing.T, head *testNode, wdir, config string) *testNode {
	t.Helper()
	w := startNodeIn(t, wdir, config, "--join", head.addr)
	head.waitLog(t, `relay: worker registered.*node=`+w.id[:8])
	return w
}

// TestRelayStockSSHAndSFTP: stock OpenSSH and sftp reach a worker that
// only joined a head, with `alknet pipe --via HEAD` as the ProxyCommand
// and no other client config; the worker sees the client's own key.
func TestRelayStockSSHAndSFTP(t *testing.T) {
	sftpBin := coretest.RequireTool(t, "sftp")
	var head *testNode
	r := newSSHRigWith(t, "", func(r *sshRig, config string) (*testNode, string) {
		wdir, wid := clientID(t)
		head = relayHead(t, wid, r.cid, "")
		w := relayWorker(t, head, wdir, config)
		return w, "--via " + head.addr + " " + w.id
	})
	out, err := r.ssh(t, "", "laptop@node", "echo", "relayed")
	if err != nil || strings.TrimSpace(out) != "relayed" {
		t.Fatalf("ssh through the head: %v\n%s\nhead:\n%s\nworker:\n%s", err, out, head.logText(), r.node.logText())
	}
	// alknet's own ssh client, with --via like every client command.
	if out := run(t, "", "ssh", "--via", head.addr, "--data-dir", r.cdir, r.node.id, "echo", "alknet-ssh"); strings.TrimSpace(out) != "alknet-ssh" {
		t.Errorf("alknet ssh --via printed %q", out)
	}
	local := t.TempDir()
	data := make([]byte, 1<<20)
	rand.Read(data)
	writeFile(t, filepath.Join(local, "up.bin"), string(data))
	sub := exec.Command(sftpBin, append(append([]string{"-b", "-"}, r.opts...), "laptop@node")...)
	sub.Dir = local
	sub.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	sub.Stdin = strings.NewReader("put up.bin\nget up.bin down.bin\n")
	if out, err := sub.CombinedOutput(); err != nil {
		t.Fatalf("sftp through the head: %v\n%s", err, out)
	}
	if got, err := os.ReadFile(filepath.Join(local, "down.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("sftp round trip through the head differs (err %v)", err)
	}
	// Stock git over that ssh: git-upload-pack runs on the worker (exec).
	if gitBin, err := exec.LookPath("git"); err == nil {
		bare := filepath.Join(t.TempDir(), "repo.git")
		work := t.TempDir()
		for _, args := range [][]string{{"init", "-q", "--bare", bare}, {"-C", work, "init", "-q", "-b", "main"},
			{"-C", work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "first"},
			{"-C", work, "push", "-q", bare, "main"}} {
			if out, err := exec.Command(gitBin, args...).CombinedOutput(); err != nil {
				t.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		sshCmd := "ssh"
		for _, o := range r.opts {
			sshCmd += " '" + strings.ReplaceAll(o, "'", `'\''`) + "'"
		}
		clone := exec.Command(gitBin, "clone", "-q", "laptop@node:"+bare, filepath.Join(t.TempDir(), "clone"))
		clone.Env = append(os.Environ(), "GIT_SSH_COMMAND="+sshCmd, "ALKNET_PASSPHRASE=", "GIT_CONFIG_NOSYSTEM=1")
		if out, err := clone.CombinedOutput(); err != nil {
			t.Errorf("git clone over ssh through the head: %v\n%s", err, out)
		}
	}
	// The worker authenticated the client itself, and counted the relayed
	// connection against the head.
	if !regexp.MustCompile(`msg=auth result=accept alpn=alknet/ssh remote_ip=relay:127\.0\.0\.1:\d+ id=laptop`).MatchString(r.node.logText()) {
		t.Errorf("no accept of the client's own key on the worker:\n%s", r.node.logText())
	}
}

// TestRelayCallFSAndGit: call, fs (multi-stream protocols, over the
// single-stream transport inside the relayed stream) and git through
// alknet:// reach a worker through its head.
func TestRelayCallFSAndGit(t *testing.T) {
	coretest.RequireTool(t, "git")
	cdir, cid := clientID(t)
	wdir, wid := clientID(t)
	head := relayHead(t, wid, cid, "")
	w := relayWorker(t, head, wdir, fmt.Sprintf("[[peers]]\nid = \"dev\"\nkeys = [%q]\n"+
		"scopes = [\"fs:read\", \"fs:write\", \"git:read\", \"git:write\", \"git:create\"]\n", cid))

	out := run(t, "", "call", "--via", head.addr, w.id, "sys/echo", `{"message":"relayed"}`, "--data-dir", cdir)
	var echo map[string]string
	if err := json.Unmarshal([]byte(out), &echo); err != nil || echo["caller"] != "dev" || echo["message"] != "relayed" {
		t.Errorf("sys/echo through the head printed %q", out)
	}

	tree, _ := fsTree(t)
	root := addQ(t, cdir, tree)[0]
	if _, stderr, err := runErr(t, "", "fs", "push", "--via", head.addr, "--data-dir", cdir, root, "--to", w.id); err != nil {
		t.Fatalf("fs push through the head: %v %s", err, stderr)
	}
	got := filepath.Join(t.TempDir(), "out")
	if _, stderr, err := runErr(t, "", "fs", "get", "--via", head.addr, "--data-dir", cdir, "--node", w.id, root, "-o", got); err != nil {
		t.Fatalf("fs get --node through the head: %v %s", err, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(got, "a.txt")); err != nil || string(b) != "hello fs\n" {
		t.Errorf("fs get through the head: %q %v", b, err)
	}

	// git: the helper takes --via from ALKNET_VIA, as stock git runs it.
	r := &gitRig{cdir: cdir}
	links := t.TempDir()
	run(t, "", "git", "install-helper", links)
	home := t.TempDir()
	r.env = append(os.Environ(),
		"PATH="+links+string(os.PathListSeparator)+os.Getenv("PATH"),
		"ALKNET_DATA_DIR="+cdir, "ALKNET_PASSPHRASE=", "ALKNET_VIA="+head.addr,
		"HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	run(t, "", "git", "create", "--via", head.addr, "--data-dir", cdir, w.id, "team/app")
	work := t.TempDir()
	r.git(t, work, "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(work, "a.txt"), "hello\n")
	r.git(t, work, "add", "a.txt")
	r.git(t, work, "commit", "-q", "-m", "first")
	url := "alknet://" + w.id + "/team/app.git"
	r.git(t, work, "push", "-q", url, "main")
	clone := filepath.Join(t.TempDir(), "clone")
	r.git(t, t.TempDir(), "clone", "-q", url, clone)
	if b, err := os.ReadFile(filepath.Join(clone, "a.txt")); err != nil || string(b) != "hello\n" {
		t.Errorf("git clone through the head: %q %v", b, err)
	}
	if strings.Contains(head.logText(), "team/app") {
		t.Errorf("the head logged what it relayed:\n%s", head.logText())
	}
}

// TestRelayRefusals: the head refuses a client without the relay scope
// and a node that is not attached, each with a clear reason; a client the
// head lets through but the worker does not know gets the worker's own
// refusal (the head cannot grant access to the worker).
func TestRelayRefusals(t *testing.T) {
	cdir, cid := clientID(t)
	sdir, sid := clientID(t)
	wdir, wid := clientID(t)
	head := relayHead(t, wid, cid, fmt.Sprintf("[[peers]]\nid = \"stranger\"\nkeys = [%q]\n", sid))
	// The worker knows nobody: the granted client is a stranger there.
	w := relayWorker(t, head, wdir, "")
	_, absent := clientID(t)
	for _, tc := range []struct {
		name, dir, target, want string
	}{
		{"no relay scope", sdir, w.id, "lacks the scope relay: on that node run `alknet peers grant ID relay`"},
		{"not attached", cdir, absent, `no-node: no such node attached to this head`},
		{"unknown to the worker", cdir, w.id, `does not know your key ` + cid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := runErr(t, "", "call", "--via", head.addr, tc.target, "sys/echo", `{"message":"x"}`, "--data-dir", tc.dir)
			t.Logf("stderr: %s", stderr)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("err %v, stderr %q; want %q", err, stderr, tc.want)
			}
		})
	}
	if !strings.Contains(head.logText(), "auth result=reject alpn=alknet/relay") {
		t.Errorf("no auth reject line on the head:\n%s", head.logText())
	}
}

// TestRelayHeadBounds attacks a head with small relay limits: a worker
// that never answers an accept costs a client the accept timeout, and a
// client opening many connect streams gets them refused as busy or over
// the stream limit, each answered, while the head stays responsive.
func TestRelayHeadBounds(t *testing.T) {
	wkey := coretest.NewKey(t)
	cdir, cid := clientID(t)
	ckey := coretest.NewKey(t)
	head := relayHead(t, coretest.NodeID(wkey).String(), cid,
		fmt.Sprintf("[[peers]]\nid = \"attacker\"\nkeys = [%q]\nscopes = [\"relay\"]\n\n"+
			"[relay]\nmax_streams_per_worker = 2\naccept_timeout = \"500ms\"\n\n[limits]\nmax_streams_per_conn = 8\n",
			coretest.NodeID(ckey)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A worker that registers and then answers nothing.
	wc, err := (&core.Dialer{Key: wkey, Network: core.NetworkQUIC}).Dial(ctx, head.addr, core.RelayALPN)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.CloseWithError(0, "")
	ls, err := wc.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ls.Write(core.AppendFrame(nil, []byte(`{"op":"listen"}`))); err != nil {
		t.Fatal(err)
	}
	if b, err := (core.FrameLimits{}).ReadFrame(ls, 1024); err != nil || string(b) != `{"ok":true}` {
		t.Fatalf("listen: %q %v", b, err)
	}
	wid := coretest.NodeID(wkey).String()

	start := time.Now()
	_, stderr, err := runErr(t, "", "call", "--via", head.addr, wid, "sys/echo", "{}", "--data-dir", cdir)
	if err == nil || !strings.Contains(stderr, "unavailable") || time.Since(start) > 10*time.Second {
		t.Errorf("silent worker: err %v after %v, stderr %q", err, time.Since(start), stderr)
	}

	// Many connect streams on one connection: each is answered (busy or
	// unavailable), and no more than max_streams_per_conn are open at once.
	ac, err := (&core.Dialer{Key: ckey, Network: core.NetworkQUIC}).Dial(ctx, head.addr, core.RelayALPN)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.CloseWithError(0, "")
	connect := core.AppendFrame(nil, fmt.Appendf(nil, `{"op":"connect","node":%q,"alpn":"alknet/call"}`, wid))
	answers := make(chan string, 64)
	for range 40 {
		go func() {
			s, err := ac.OpenStream(ctx)
			if err != nil {
				answers <- "open: " + err.Error()
				return
			}
			defer s.Abort(0)
			_ = s.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := s.Write(connect); err != nil {
				answers <- "write: " + err.Error()
				return
			}
			b, err := (core.FrameLimits{}).ReadFrame(s, 1024)
			if err != nil {
				answers <- "read: " + err.Error()
				return
			}
			answers <- string(b)
		}()
	}
	busy := 0
	for range 40 {
		a := <-answers
		switch {
		case strings.Contains(a, `"error":"busy"`):
			busy++
		case strings.Contains(a, `"error":"unavailable"`):
		default:
			t.Errorf("connect answered %q", a)
		}
	}
	if busy == 0 {
		t.Error("no connect was refused as busy past max_streams_per_worker")
	}
	// Still responsive to others.
	if _, stderr, err := runErr(t, "", "call", "--via", head.addr, wid, "sys/echo", "{}", "--data-dir", cdir); !strings.Contains(stderr, "unavailable") {
		t.Errorf("after the attack: err %v, stderr %q", err, stderr)
	}
}

// TestRelayByNodeID: a worker that joined a head and publishes no
// reachable address names the head in its signed record; a client given
// only its NodeID and a resolver finds the relayed route by itself.
func TestRelayByNodeID(t *testing.T) {
	cdir, cid := clientID(t)
	wdir, wid := clientID(t)
	head := startNode(t, fmt.Sprintf("[[peers]]\nid = \"worker\"\nkeys = [%q]\nscopes = [\"call:worker\", \"dns:publish\"]\n\n"+
		"[[peers]]\nid = \"client\"\nkeys = [%q]\nscopes = [\"relay\"]\n", wid, cid))
	// Listening on the unspecified address, the worker publishes a port
	// but no address: only the head reaches it.
	w := startNodeIn(t, wdir, fmt.Sprintf("[[peers]]\nid = \"dev\"\nkeys = [%q]\n\n[dns]\nhomes = [%q]\n", cid, head.addr),
		"--join", head.addr, "--listen", "0.0.0.0:0")
	head.waitLog(t, `relay: worker registered.*node=`+w.id[:8])
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _, err := runErr(t, "", "resolve", "--json", "--resolver", head.addr, w.id, "--data-dir", cdir)
		var rec resolveJSON
		if err == nil && json.Unmarshal([]byte(out), &rec) == nil && len(rec.Via) == 1 {
			if rec.Via[0] != head.addr || len(rec.Addrs) != 0 {
				t.Fatalf("record: via %v, addrs %v; want via %s and no address", rec.Via, rec.Addrs, head.addr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record with via on the head: %v %q", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := run(t, "", "call", "--resolver", head.addr, w.id, "sys/echo", `{"message":"found"}`, "--data-dir", cdir)
	var echo map[string]string
	if err := json.Unmarshal([]byte(out), &echo); err != nil || echo["caller"] != "dev" || echo["message"] != "found" {
		t.Errorf("sys/echo by NodeID printed %q", out)
	}
}

// TestRelayHeadWithoutRelay: a worker joined to a head that does not
// relay (an older node, or relay disabled) says so once and still joins
// for calls.
func TestRelayHeadWithoutRelay(t *testing.T) {
	wdir, wid := clientID(t)
	head := startNode(t, fmt.Sprintf("[services]\ndisable = [\"relay\"]\n\n[[peers]]\nid = \"worker1\"\nkeys = [%q]\nscopes = [\"call:worker\"]\n", wid))
	w := startNodeIn(t, wdir, fmt.Sprintf("[[peers]]\nid = \"head\"\nkeys = [%q]\n", head.id), "--join", head.addr)
	head.waitLog(t, `call: peer attached.*peer=worker1`)
	w.waitLog(t, `relay: the head does not relay for this node; retrying slowly.*retry_in=5m0s`)
}
