package ssh

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// rig drives stock OpenSSH against a node, through the test binary as
// ProxyCommand bridge.
type rig struct {
	t      *testing.T
	e      *env
	dir    string
	ssh    string
	keygen string
	known  string
}

func newRig(t *testing.T, e *env) *rig {
	t.Helper()
	r := &rig{t: t, e: e, dir: t.TempDir(), ssh: coretest.RequireTool(t, "ssh"), keygen: coretest.RequireTool(t, "ssh-keygen")}
	r.known = filepath.Join(r.dir, "known_hosts")
	line := "alknet-test " + string(xssh.MarshalAuthorizedKey(e.srv.HostKey()))
	if err := os.WriteFile(r.known, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// key makes a key pair with ssh-keygen and returns its private key path and
// public key.
func (r *rig) key(name, typ string) (string, xssh.PublicKey) {
	r.t.Helper()
	path := filepath.Join(r.dir, name)
	r.run(r.keygen, "-q", "-t", typ, "-N", "", "-C", name, "-f", path)
	b, err := os.ReadFile(path + ".pub")
	if err != nil {
		r.t.Fatal(err)
	}
	pub, _, _, _, err := xssh.ParseAuthorizedKey(b)
	if err != nil {
		r.t.Fatal(err)
	}
	return path, pub
}

// peerFor is the directory entry of an ed25519 public key.
func peerFor(t *testing.T, id string, pub xssh.PublicKey, scopes ...string) core.PeerEntry {
	t.Helper()
	nid, err := core.NodeIDFromPublicKey(pub.(xssh.CryptoPublicKey).CryptoPublicKey().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return core.PeerEntry{ID: id, NodeIDs: []core.NodeID{nid}, Scopes: scopes}
}

// run runs a helper tool and fails the test if it fails.
func (r *rig) run(name string, args ...string) {
	r.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// command builds an ssh command logging in with key through the bridge.
func (r *rig) command(ctx context.Context, key string, network core.Network, args ...string) *exec.Cmd {
	r.t.Helper()
	bin, err := os.Executable()
	if err != nil {
		r.t.Fatal(err)
	}
	base := []string{
		"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + r.known,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "HostKeyAlias=alknet-test",
		"-o", "ConnectTimeout=20",
		"-o", "ProxyCommand='" + bin + "'",
		"-i", key,
	}
	cmd := exec.CommandContext(ctx, r.ssh, append(base, args...)...)
	// The race detector would hold the bridge (this test binary) for a second at exit.
	cmd.Env = append(os.Environ(), bridgeEnv+"="+r.e.node.Addr, bridgeNetEnv+"="+string(network), "GORACE=atexit_sleep_ms=0")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// output runs ssh to completion and returns stdout, stderr and the exit code.
func (r *rig) output(key string, stdin string, args ...string) (string, string, int) {
	r.t.Helper()
	return r.outputOn(core.NetworkQUIC, key, stdin, args...)
}

func (r *rig) outputOn(network core.Network, key string, stdin string, args ...string) (string, string, int) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := r.command(ctx, key, network, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("ssh: %v\n%s", err, stderr.String())
	}
	return stdout.String(), stderr.String(), code
}

// background starts a long-running ssh (a forward) with -v and returns the
// watcher of its stderr. The test's end stops it.
func (r *rig) background(key string, args ...string) *watcher {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := r.command(ctx, key, core.NetworkQUIC, append([]string{"-v", "-N"}, args...)...)
	w := &watcher{ch: make(chan struct{}, 1)}
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		cancel()
		r.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
		w.notify()
	}()
	w.exited = exited
	r.t.Cleanup(func() {
		cancel()
		<-exited
	})
	return w
}

// watcher collects a process's stderr and lets a test wait for a line.
type watcher struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	ch     chan struct{}
	exited chan struct{}
}

func (w *watcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
	w.notify()
	return len(p), nil
}

func (w *watcher) notify() {
	select {
	case w.ch <- struct{}{}:
	default:
	}
}

func (w *watcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wait returns the first match of re in the output, failing the test if the
// process exits or 20s pass first.
func (w *watcher) wait(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for {
		if m := re.FindStringSubmatch(w.String()); m != nil {
			return m
		}
		select {
		case <-w.exited:
			if m := re.FindStringSubmatch(w.String()); m != nil {
				return m
			}
			t.Fatalf("ssh exited before %q:\n%s", re, w.String())
		case <-timer.C:
			t.Fatalf("no %q after 20s:\n%s", re, w.String())
		case <-w.ch:
		}
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// httpGet fetches url without keeping connections around.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const httpBody = "hello from the far side"

// TestOpenSSH drives the stock ssh client through the ProxyCommand bridge.
func TestOpenSSH(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Exec = &Exec{} })
	r := newRig(t, e)
	aliceKey, alicePub := r.key("alice", "ed25519")
	bobKey, bobPub := r.key("bob", "ed25519")
	ecKey, ecPub := r.key("carol", "ecdsa")
	strangerKey, _ := r.key("stranger", "ed25519")
	e.setPeers(
		peerFor(t, "alice", alicePub, ScopeConnect, ScopeShell, ScopeForward, ScopeRemoteForward),
		peerFor(t, "bob", bobPub, ScopeConnect),
		core.PeerEntry{ID: "carol", SSHKeys: [][]byte{ecPub.Marshal()}, Scopes: []string{ScopeConnect, ScopeShell}},
	)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, httpBody)
	}))
	t.Cleanup(web.Close)
	webPort := strconv.Itoa(web.Listener.Addr().(*net.TCPAddr).Port)
	e.setPolicy(Policy{Forward: mustRules(t, "allow 127.0.0.1", "allow localhost")})

	t.Run("exec", func(t *testing.T) {
		out, errOut, code := r.output(aliceKey, "", "alice@alknet-test", "echo ok")
		if out != "ok\n" || code != 0 {
			t.Fatalf("ssh echo ok: %q, exit %d\n%s", out, code, errOut)
		}
		if _, _, code := r.output(aliceKey, "", "alice@alknet-test", "exit 3"); code != 3 {
			t.Fatalf("exit 3: exit code %d", code)
		}
	})
	t.Run("ecdsa key", func(t *testing.T) {
		out, errOut, code := r.output(ecKey, "", "carol@alknet-test", "echo $ALKNET_IDENTITY")
		if out != "carol\n" || code != 0 {
			t.Fatalf("as carol: %q, exit %d\n%s", out, code, errOut)
		}
	})
	t.Run("pty", func(t *testing.T) {
		out, errOut, code := r.output(aliceKey, "", "-tt", "alice@alknet-test", "tty")
		if !strings.HasPrefix(out, "/dev/pts/") || code != 0 {
			t.Fatalf("ssh -tt tty: %q, exit %d\n%s", out, code, errOut)
		}
	})
	t.Run("exec refused without ssh:shell", func(t *testing.T) {
		out, errOut, code := r.output(bobKey, "", "bob@alknet-test", "echo ok")
		if code == 0 || strings.Contains(out, "ok") {
			t.Fatalf("exec without ssh:shell: %q, exit %d", out, code)
		}
		if !strings.Contains(errOut, "exec request failed") {
			t.Errorf("stderr: %s", errOut)
		}
	})
	t.Run("unknown key refused", func(t *testing.T) {
		_, errOut, code := r.output(strangerKey, "", "alice@alknet-test", "echo ok")
		if code != 255 || !strings.Contains(errOut, "Permission denied") {
			t.Fatalf("unknown key: exit %d\n%s", code, errOut)
		}
	})
	t.Run("host key checked", func(t *testing.T) {
		wrong := newRig(t, e)
		other := newEnv(t, nil)
		line := "alknet-test " + string(xssh.MarshalAuthorizedKey(other.srv.HostKey()))
		if err := os.WriteFile(wrong.known, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		_, errOut, code := wrong.output(aliceKey, "", "alice@alknet-test", "echo ok")
		if code != 255 || !strings.Contains(errOut, "Host key verification failed") {
			t.Fatalf("with another host key known: exit %d\n%s", code, errOut)
		}
	})
	t.Run("local forward -L", func(t *testing.T) {
		port := freePort(t)
		w := r.background(aliceKey, "-L", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%s", port, webPort), "alice@alknet-test")
		w.wait(t, regexp.MustCompile(`Local forwarding listening on 127\.0\.0\.1 port `+strconv.Itoa(port)+`\.[\s\S]*Entering interactive session`))
		if got := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != httpBody {
			t.Fatalf("through -L: %q", got)
		}
	})
	t.Run("dynamic forward -D", func(t *testing.T) {
		curl := coretest.RequireTool(t, "curl")
		port := freePort(t)
		w := r.background(aliceKey, "-D", fmt.Sprintf("127.0.0.1:%d", port), "alice@alknet-test")
		w.wait(t, regexp.MustCompile(`Local forwarding listening on 127\.0\.0\.1 port `+strconv.Itoa(port)+`\.[\s\S]*Entering interactive session`))
		out, err := exec.Command(curl, "-sS", "--max-time", "20", "--socks5-hostname", fmt.Sprintf("127.0.0.1:%d", port),
			"http://localhost:"+webPort+"/").CombinedOutput()
		if err != nil || string(out) != httpBody {
			t.Fatalf("curl through -D: %q, %v", out, err)
		}
	})
	t.Run("remote forward -R", func(t *testing.T) {
		w := r.background(aliceKey, "-R", "0:127.0.0.1:"+webPort, "alice@alknet-test")
		m := w.wait(t, regexp.MustCompile(`Allocated port (\d+) for remote forward`))
		if got := httpGet(t, "http://127.0.0.1:"+m[1]+"/"); got != httpBody {
			t.Fatalf("through -R: %q", got)
		}
	})
	t.Run("stdio forward -W", func(t *testing.T) {
		out, errOut, code := r.output(aliceKey, "GET / HTTP/1.0\r\nHost: x\r\n\r\n", "-W", "127.0.0.1:"+webPort, "alice@alknet-test")
		if !strings.HasSuffix(out, httpBody) {
			t.Fatalf("ssh -W: %q, exit %d\n%s", out, code, errOut)
		}
	})
	t.Run("forward denied by policy", func(t *testing.T) {
		e.setPolicy(Policy{Forward: mustRules(t, "deny 127.0.0.0/8", "allow *")})
		defer e.setPolicy(Policy{Forward: mustRules(t, "allow 127.0.0.1", "allow localhost")})
		out, errOut, code := r.output(aliceKey, "GET / HTTP/1.0\r\n\r\n", "-W", "localhost:"+webPort, "alice@alknet-test")
		if code == 0 || strings.Contains(out, httpBody) || !strings.Contains(errOut, "administratively prohibited") {
			t.Fatalf("ssh -W to a denied range: %q, exit %d\n%s", out, code, errOut)
		}
	})
	t.Run("TCP+TLS bridge", func(t *testing.T) {
		out, errOut, code := r.outputOn(core.NetworkTCP, aliceKey, "", "alice@alknet-test", "echo ok")
		if out != "ok\n" || code != 0 {
			t.Fatalf("over TCP+TLS: %q, exit %d\n%s", out, code, errOut)
		}
	})
	t.Run("plain TCP listener", func(t *testing.T) {
		port := strconv.Itoa(serveTCP(t, e).Port)
		out, errOut, code := r.output(aliceKey, "", "-o", "ProxyCommand=none", "-p", port, "alice@127.0.0.1", "echo ok")
		if out != "ok\n" || code != 0 {
			t.Fatalf("over plain TCP: %q, exit %d\n%s", out, code, errOut)
		}
	})
	t.Run("certificates", func(t *testing.T) {
		caKey, caPub := r.key("ca", "ed25519")
		e.setPolicy(Policy{CertAuthorities: []CertAuthority{{Name: "ca", Key: caPub, Scopes: []string{ScopeConnect, ScopeShell}}}})
		cert := func(name string, opts ...string) string {
			key, pub := r.key(name, "ed25519")
			if err := os.WriteFile(key+".pub", xssh.MarshalAuthorizedKey(pub), 0o600); err != nil {
				t.Fatal(err)
			}
			r.run(r.keygen, append(append([]string{"-q", "-s", caKey, "-I", name}, opts...), key+".pub")...)
			return key
		}
		valid := cert("cert-valid", "-n", "alice,ops", "-V", "-1h:+1h")
		expired := cert("cert-expired", "-n", "alice", "-V", "20200101:20200102")
		anyone := cert("cert-noprincipals", "-V", "-1h:+1h")
		forced := cert("cert-forced", "-n", "alice", "-V", "-1h:+1h", "-O", "force-command=echo forced")
		for _, tt := range []struct {
			name, key, user, want string
		}{
			{"accepted", valid, "alice", "alice\n"},
			{"second principal", valid, "ops", "ops\n"},
			{"force-command", forced, "alice", "forced\n"},
		} {
			out, errOut, code := r.output(tt.key, "", tt.user+"@alknet-test", "echo $ALKNET_IDENTITY")
			if out != tt.want || code != 0 {
				t.Errorf("%s: %q, exit %d\n%s", tt.name, out, code, errOut)
			}
		}
		for _, tt := range []struct{ name, key, user string }{
			{"wrong principal", valid, "bob"},
			{"expired", expired, "alice"},
			{"no principals", anyone, "alice"},
		} {
			_, errOut, code := r.output(tt.key, "", tt.user+"@alknet-test", "echo ok")
			if code != 255 || !strings.Contains(errOut, "Permission denied") {
				t.Errorf("%s: exit %d\n%s", tt.name, code, errOut)
			}
		}
	})
	// unknown key, wrong principal, expired, no principals
	coretest.Eventually(t, 10*time.Second, "4 auth reject lines", func() bool {
		return len(e.logs.lines("msg=auth result=reject alpn=alknet/ssh remote_ip=127.0.0.1 id=- node=-")) == 4
	})
}
