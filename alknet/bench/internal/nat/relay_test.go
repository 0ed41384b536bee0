package nat

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
)

// TestReachStockClients: stock OpenSSH's ssh and sftp and git, in one
// home, reach the worker behind the other home's NAT through the head,
// with `alknet pipe --via HEAD --alpn alknet/ssh W` as ssh's ProxyCommand
// and nothing else configured; git also through alknet:// with the head
// given by ALKNET_VIA. The worker's NAT is a cone, the client's
// symmetric: a relay needs no hole.
func TestReachStockClients(t *testing.T) {
	NeedTools(t, "ssh", "sftp", "git")
	r := startTestRig(t, Cone, Symmetric)
	ctx := benchtest.TestContext(t)

	t.Run("ssh", func(t *testing.T) {
		out, err := r.Client(ctx, 0, "", "ssh", append(r.SSHOptions(), r.SSHDest(), "echo", "hello from behind the NAT")...)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != "hello from behind the NAT" {
			t.Errorf("ssh printed %q", got)
		}
	})

	t.Run("sftp", func(t *testing.T) {
		data := make([]byte, 1<<20)
		rand.Read(data)
		if err := os.WriteFile(filepath.Join(r.Srv, "file.bin"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "got.bin")
		if out, err := r.Client(ctx, 0, "get /file.bin "+dst+"\n", "sftp", append(append([]string{"-b", "-"}, r.SSHOptions()...), r.SSHDest())...); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
			t.Errorf("sftp got %d bytes (%v), want the %d written", len(got), err, len(data))
		}
	})

	head, err := r.MakeRepo(ctx, "team/app")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("git-over-ssh", func(t *testing.T) {
		quoted := make([]string, 0, len(r.SSHOptions())+1)
		for _, o := range append([]string{"ssh"}, r.SSHOptions()...) {
			quoted = append(quoted, ShellQuote(o))
		}
		dst := filepath.Join(t.TempDir(), "app")
		if out, err := r.Client(ctx, 0, "", "env", "GIT_SSH_COMMAND="+strings.Join(quoted, " "),
			"git", "clone", "-q", r.SSHDest()+":"+r.RepoPath("team/app"), dst); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		checkClone(t, dst, head)
	})
	t.Run("git-alknet-url", func(t *testing.T) {
		helpers := t.TempDir()
		if out, err := r.Client(ctx, 0, "", r.Bin, "git", "install-helper", helpers); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		dst := filepath.Join(t.TempDir(), "app")
		if out, err := r.Client(ctx, 0, "", "env", "PATH="+helpers+":"+os.Getenv("PATH"),
			"ALKNET_DATA_DIR="+r.ClientDir, "ALKNET_VIA="+r.HeadAddr,
			"git", "clone", "-q", "alknet://"+r.WorkerID+"/team/app.git", dst); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		checkClone(t, dst, head)
	})
}

// checkClone fails t unless dir is a clone at commit.
func checkClone(t *testing.T, dir, commit string) {
	t.Helper()
	out, err := runIn(t.Context(), "git", "-C", dir, "rev-parse", "HEAD")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != commit {
		t.Errorf("the clone is at %s, want %s", got, commit)
	}
}

// TestReachCallAndFS: alknet's own multi-stream protocols work through the
// relay: a call reaches the worker, which sees the client's real identity
// (its own TLS handshake with it, not the head's word), and an fs get
// fetches a file from the worker's store, verified.
func TestReachCallAndFS(t *testing.T) {
	r := startTestRig(t, Cone, Symmetric)
	ctx := benchtest.TestContext(t)
	out, err := r.Alknet(ctx, 0, "", echoArgs(r.WorkerID, "relayed", r.Via()...)...)
	if err != nil {
		t.Fatal(err)
	}
	var echo map[string]string
	if err := json.Unmarshal(out, &echo); err != nil || echo["message"] != "relayed" || echo["caller"] != rigPeer || echo["forwardedFor"] != "" {
		t.Errorf("relayed sys/echo printed %q; want the worker to see the client itself", out)
	}

	data := make([]byte, 3<<20)
	rand.Read(data)
	src := filepath.Join(t.TempDir(), "data.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cid, err := r.AddToWorker(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "got.bin")
	before, err := r.Top.Crossing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := r.Alknet(ctx, 0, "", append([]string{"fs", "get", cid, "--node", r.WorkerID, "-o", dst}, r.Via()...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got, err := os.ReadFile(dst); err != nil || !bytes.Equal(got, data) {
		t.Errorf("fs get through the relay got %d bytes (%v), want the %d added", len(got), err, len(data))
	}
	// The bytes went to the head, not past it.
	after, err := r.Top.Crossing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if local, fwd := after.Local-before.Local, after.Forwarded-before.Forwarded; local < int64(len(data)) || fwd > int64(len(data))/8 {
		t.Errorf("the public namespace took %d bytes and forwarded %d; want the %d of the file taken by the head", local, fwd, len(data))
	}
}

// TestReachHeadSeesCiphertext: what a client sends the worker through the
// head is not in the head's memory, while what it sends the head itself
// is. Both carry a fresh marker in plaintext inside their TLS (a call's
// JSON input; a file of repeated markers fetched with fs get): a head
// that terminated the relayed TLS would have held the markers in its
// buffers. The head's relay handler is a byte splice by construction
// (core.RelayServer holds no key); this checks the running binary.
func TestReachHeadSeesCiphertext(t *testing.T) {
	r := startTestRig(t, Cone, Cone)
	ctx := benchtest.TestContext(t)
	pid := r.Head.Cmd.Process.Pid
	checkIsAlknet(t, pid, r.Bin)
	toHead, relayedCall, relayedFile, never := newMarker(t), newMarker(t), newMarker(t), newMarker(t)

	if out, err := r.Alknet(ctx, 0, "", echoArgs(r.WorkerID, relayedCall, r.Via()...)...); err != nil || !strings.Contains(string(out), relayedCall) {
		t.Fatalf("relayed call: %v\n%s", err, out)
	}
	src := filepath.Join(t.TempDir(), "markers.txt")
	if err := os.WriteFile(src, bytes.Repeat([]byte(relayedFile+"\n"), 20000), 0o600); err != nil {
		t.Fatal(err)
	}
	cid, err := r.AddToWorker(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "got.txt")
	if out, err := r.Alknet(ctx, 0, "", append([]string{"fs", "get", cid, "--node", r.WorkerID, "-o", dst}, r.Via()...)...); err != nil {
		t.Fatalf("relayed fs get: %v\n%s", err, out)
	}
	// The control: the head decrypts what is sent to it.
	if out, err := r.Alknet(ctx, 0, "", echoArgs(r.HeadAddr, toHead)...); err != nil {
		t.Fatalf("call to the head: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		what, marker string
		want         bool
	}{
		{"a call to the head", toHead, true},
		{"a relayed call", relayedCall, false},
		{"a relayed fs get", relayedFile, false},
		{"nothing", never, false},
	} {
		found, err := memoryContains(pid, []byte(tc.marker))
		if err != nil {
			t.Fatal(err)
		}
		if found != tc.want {
			t.Errorf("the marker of %s in the head's memory: %v, want %v", tc.what, found, tc.want)
		}
	}
}
