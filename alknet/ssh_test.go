package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
)

// sshRig is a node running the ssh and sftp services, and a stock OpenSSH
// client set up to reach it through `alknet pipe`.
type sshRig struct {
	node    *testNode
	cdir    string // the client's data dir, for the pipe's TLS key
	cid     string // its NodeID
	keyFile string // the client's OpenSSH key
	pubKey  string // its public key line
	opts    []string
}

const sshPeerScopes = `["ssh:connect", "ssh:shell", "ssh:forward", "sftp:read", "sftp:write"]`

func newSSHRig(t *testing.T, extra string) *sshRig {
	t.Helper()
	return newSSHRigWith(t, extra, func(_ *sshRig, config string) (*testNode, string) {
		n := startNode(t, config)
		return n, n.addr
	})
}

// newSSHRigWith is newSSHRig with the node started by start, which gets
// the rig (its client identity made) and the node's config, and returns
// the node and the pipe's arguments that reach it (its address, or
// --via HEAD NODEID).
func newSSHRigWith(t *testing.T, extra string, start func(r *sshRig, config string) (*testNode, string)) *sshRig {
	t.Helper()
	coretest.RequireTool(t, "ssh")
	keygen := coretest.RequireTool(t, "ssh-keygen")
	r := &sshRig{}
	r.cdir, r.cid = clientID(t)
	r.keyFile = filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "laptop", "-f", r.keyFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(r.keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	r.pubKey = strings.TrimSpace(string(pub))
	var target string
	r.node, target = start(r, r.config(extra))
	hostKey := strings.Fields(strings.Split(run(t, "", "id", "--data-dir", r.node.dir), "\n")[1])
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	writeFile(t, knownHosts, "alknet-node "+hostKey[0]+" "+hostKey[1]+"\n")
	proxy := fmt.Sprintf("%s pipe --alpn alknet/ssh --data-dir %s %s", bin, r.cdir, target)
	r.opts = []string{
		"-F", "none", "-i", r.keyFile, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + knownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "HostKeyAlias=alknet-node", "-o", "ProxyCommand=" + proxy,
	}
	return r
}

// config is the node's config: peer "laptop" known by the client's OpenSSH
// key and by its NodeID (one identity, whichever door it uses), exec on,
// and extra appended.
func (r *sshRig) config(extra string) string {
	return fmt.Sprintf("[[peers]]\nid = \"laptop\"\nkeys = [%q, %q]\nscopes = %s\n\n[ssh]\nexec = true\n\n%s", r.pubKey, r.cid, sshPeerScopes, extra)
}

// ssh runs the stock client with args after the rig's options.
func (r *sshRig) ssh(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", append(r.opts[:len(r.opts):len(r.opts)], args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestSSHServiceWithStockOpenSSH(t *testing.T) {
	// A TCP server that greets and hangs up: the -W destination.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello from the target\n"))
			c.Close()
		}
	}()
	target := ln.Addr().String()
	allow := "[ssh.policy]\nforward = [\"allow 127.0.0.1\"]\n"
	r := newSSHRig(t, allow)

	out, err := r.ssh(t, "", "laptop@node", "echo", "ok")
	if err != nil || strings.TrimSpace(out) != "ok" {
		t.Fatalf("ssh echo ok: %v\n%s\n%s", err, out, r.node.logText())
	}
	if out, err = r.ssh(t, "", "laptop@node", "exit 3"); exitCode(err) != 3 {
		t.Fatalf("ssh 'exit 3': %v\n%s", err, out)
	}
	if out, err = r.ssh(t, "", "-W", target, "laptop@node"); err != nil || !strings.Contains(out, "hello from the target") {
		t.Fatalf("ssh -W %s: %v\n%s", target, err, out)
	}

	// The forwarding rules are reloaded: the next channel is denied.
	writeFile(t, filepath.Join(r.node.dir, "alknet.toml"), r.config("[ssh.policy]\nforward = [\"deny *\"]\n"))
	r.node.waitLog(t, `config reloaded`)
	if out, err = r.ssh(t, "", "-W", target, "laptop@node"); err == nil || !strings.Contains(out, "administratively prohibited") {
		t.Fatalf("ssh -W after deny: %v\n%s", err, out)
	}
	if strings.Contains(r.node.logText(), target) {
		t.Errorf("the node logged a forwarding destination:\n%s", r.node.logText())
	}
}

func TestSFTPServiceRawAndSubsystem(t *testing.T) {
	sftpBin := coretest.RequireTool(t, "sftp")
	r := newSSHRig(t, "")
	data := make([]byte, 3<<20)
	rand.Read(data)
	local := t.TempDir()
	writeFile(t, filepath.Join(local, "up.bin"), string(data))

	// Raw SFTP on alknet/sftp: sftp's -D runs the pipe as its server.
	pipe := fmt.Sprintf("%s pipe --alpn alknet/sftp --data-dir %s %s", bin, r.cdir, r.node.addr)
	raw := exec.Command(sftpBin, "-b", "-", "-D", pipe)
	raw.Dir = local
	raw.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	raw.Stdin = strings.NewReader("put up.bin\nmkdir d\nrename up.bin d/a.bin\nls d\n")
	if out, err := raw.CombinedOutput(); err != nil {
		t.Fatalf("sftp -D: %v\n%s", err, out)
	}
	// The SSH subsystem serves the same identity, so the same root.
	batch := "get d/a.bin down.bin\n"
	sub := exec.Command(sftpBin, append(append([]string{"-b", "-"}, r.opts...), "laptop@node")...)
	sub.Dir = local
	sub.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	sub.Stdin = strings.NewReader(batch)
	if out, err := sub.CombinedOutput(); err != nil {
		t.Fatalf("sftp subsystem: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(local, "down.bin"))
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("round trip through both doors differs (err %v, %d bytes)", err, len(got))
	}
	if _, err := os.Stat(filepath.Join(r.node.dir, "sftp", "laptop", "d", "a.bin")); err != nil {
		t.Errorf("file not under <data-dir>/sftp/laptop: %v", err)
	}
	if !bytes.Contains([]byte(r.node.logText()), []byte("alpn=alknet/sftp")) {
		t.Errorf("no auth line for alknet/sftp:\n%s", r.node.logText())
	}
}

// exitCode returns the exit status carried by err, or -1.
func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
