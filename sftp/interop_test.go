package sftp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/sftp"
)

// openSSH runs stock OpenSSH sftp in batch mode against a node, through
// `sftp -D '<bridge> --alpn alknet/sftp ADDR'`, the shape of
// `sftp -D 'alknet pipe --alpn alknet/sftp ADDR'`.
type openSSH struct {
	bin, exe string
	f        *fixture
	network  core.Network
	dir      string // the client's working directory
}

func (o *openSSH) run(t *testing.T, id, batch string) (string, error) {
	t.Helper()
	bf := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(bf, []byte(batch), 0o600); err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("'%s' %s --alpn %s --network %s %s", o.exe, bridgeCommand, sftp.ALPN, o.network, o.f.node.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.bin, "-b", bf, "-D", server)
	cmd.Dir = o.dir
	// GORACE: a -race build of the bridge would otherwise sleep 1s at exit.
	cmd.Env = append(os.Environ(), bridgeKeyEnv+"="+hex.EncodeToString(o.f.keys[id].Seed()),
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestInteropOpenSSH(t *testing.T) {
	bin := coretest.RequireTool(t, "sftp")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			f := start(t, sftp.Config{}, core.Limits{}, peer{"alice", rw}, peer{"reader", []string{sftp.ScopeRead}})
			o := &openSSH{bin: bin, exe: exe, f: f, network: network, dir: t.TempDir()}
			disk := f.root("alice")

			// 8 MiB of random data, round trip, SHA-256 compared.
			const size = 8 << 20
			data, err := io.ReadAll(io.LimitReader(rand.NewChaCha8([32]byte{2}), size))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(o.dir, "up.bin"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := o.run(t, "alice", strings.Join([]string{
				"mkdir d",
				"put up.bin d/a",
				"ls d",
				"rename d/a d/b",
				"get d/b down.bin",
				"ls -l d",
				"ln -s b d/l",
				"ln d/b d/h",
				"df",
				"chmod 600 d/b",
				"mkdir d/e",
				"",
			}, "\n"))
			if err != nil {
				t.Fatalf("sftp: %v\n%s", err, out)
			}
			t.Logf("sftp output:\n%s", out)
			for _, w := range []string{"sftp> ls d\nd/a", "sftp> ls -l d\n-rw-r--r--"} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			down, err := os.ReadFile(filepath.Join(o.dir, "down.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(down) != sha256.Sum256(data) {
				t.Fatalf("SHA-256 of the download %x, want %x", sha256.Sum256(down), sha256.Sum256(data))
			}
			onDisk, err := os.ReadFile(filepath.Join(disk, "d", "b"))
			if err != nil || !bytes.Equal(onDisk, data) {
				t.Fatalf("file on the server: %d bytes, %v; want the upload", len(onDisk), err)
			}
			if target, err := os.Readlink(filepath.Join(disk, "d", "l")); err != nil || target != "b" {
				t.Fatalf("symlink on the server: %q, %v; want b", target, err)
			}
			if fi, err := os.Stat(filepath.Join(disk, "d", "b")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("chmod: %v %v, want 0600", fi, err)
			}

			// A read-only identity may list and get, not put.
			out, err = o.run(t, "reader", "ls\n")
			if err != nil {
				t.Fatalf("reader ls: %v\n%s", err, out)
			}
			if err := os.WriteFile(filepath.Join(o.dir, "small"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err = o.run(t, "reader", "put small\n")
			if err == nil || !strings.Contains(out, "Permission denied") {
				t.Fatalf("reader put: %v, want a failure saying Permission denied\n%s", err, out)
			}
			if _, err := os.Stat(filepath.Join(f.root("reader"), "small")); err == nil {
				t.Fatal("the reader's upload landed")
			}

			// A path outside the root is not found; the batch stops there.
			out, err = o.run(t, "alice", "get ../../../../etc/hostname stolen\n")
			if err == nil || !strings.Contains(out, "not found") {
				t.Fatalf("get outside the root: %v, want a failure saying not found\n%s", err, out)
			}
			t.Logf("get outside the root:\n%s", out)
			if _, err := os.Stat(filepath.Join(o.dir, "stolen")); err == nil {
				t.Fatal("a file outside the root was downloaded")
			}

			out, err = o.run(t, "alice", strings.Join([]string{
				"rm d/l",
				"rm d/h",
				"rm d/b",
				"rmdir d/e",
				"rmdir d",
				"ls",
				"",
			}, "\n"))
			if err != nil {
				t.Fatalf("sftp: %v\n%s", err, out)
			}
			if entries, err := os.ReadDir(disk); err != nil || len(entries) != 0 {
				t.Fatalf("root after rm: %v %v, want empty", entries, err)
			}
		})
	}
}
