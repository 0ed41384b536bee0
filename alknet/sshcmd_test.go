package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/ssh"
)

func TestParseForwardSpec(t *testing.T) {
	for _, tc := range []struct {
		in               string
		want             forwardSpec
		local, remote, s string // listen addresses and String; "" = in
	}{
		{"8080:web:80", forwardSpec{"", 8080, "web", 80}, "127.0.0.1:8080", "localhost:8080", ""},
		{"0.0.0.0:8080:10.0.0.5:80", forwardSpec{"0.0.0.0", 8080, "10.0.0.5", 80}, "0.0.0.0:8080", "0.0.0.0:8080", ""},
		{"*:8080:web:80", forwardSpec{"*", 8080, "web", 80}, ":8080", ":8080", ""},
		{":8080:web:80", forwardSpec{"*", 8080, "web", 80}, ":8080", ":8080", "*:8080:web:80"},
		{"[::1]:8080:[fd00::5]:443", forwardSpec{"::1", 8080, "fd00::5", 443}, "[::1]:8080", "[::1]:8080", ""},
		{"0:[2001:db8::1]:22", forwardSpec{"", 0, "2001:db8::1", 22}, "127.0.0.1:0", "localhost:0", ""},
		{"localhost:5432:db.internal:5432", forwardSpec{"localhost", 5432, "db.internal", 5432}, "localhost:5432", "localhost:5432", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseForwardSpec(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("parse %q = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if s := got.String(); s != tc.s && !(tc.s == "" && s == tc.in) {
				t.Errorf("String() = %q", s)
			}
			if got.localAddr() != tc.local || got.remoteAddr() != tc.remote {
				t.Errorf("listen addresses %q (local), %q (remote); want %q, %q", got.localAddr(), got.remoteAddr(), tc.local, tc.remote)
			}
		})
	}
	for _, bad := range []string{
		"", "8080", "8080:web", "a:b:c:d:e", "8080:web:0", "70000:web:80", "8080:web:http", "-1:web:80",
		"8080::80", "[::1:8080:web:80", "[::1]x:8080:web:80", "[web]:8080:x:80", "8080:w[e]b:80",
		"8080:we b:80", "8080:/tmp/sock:80", "+80:web:80",
	} {
		if s, err := parseForwardSpec(bad); err == nil {
			t.Errorf("parse %q = %+v, want an error", bad, s)
		}
	}
}

// FuzzParseForwardSpec: no input panics, and a parsed spec prints back to
// one that parses the same.
func FuzzParseForwardSpec(f *testing.F) {
	f.Add("8080:web:80")                // port:host:hostport
	f.Add("127.0.0.1:0:localhost:3000") // bind, port 0
	f.Add("[::1]:8080:[fd00::5]:443")   // IPv6 in brackets
	f.Add(":22:host:22")                // empty bind: every interface
	f.Add("[::1:8080:web:80")           // unclosed bracket
	f.Add("1:2:3:4:5")                  // too many fields
	f.Fuzz(func(t *testing.T, in string) {
		s, err := parseForwardSpec(in)
		if err != nil {
			return
		}
		again, err := parseForwardSpec(s.String())
		if err != nil || again != s {
			t.Fatalf("%q → %+v prints %q, which parses as %+v, %v", in, s, s.String(), again, err)
		}
	})
}

// sshNode starts a node serving ssh and makes a client data dir whose key
// may log in, forward to loopback, remote-forward and run commands.
func sshNode(t *testing.T) (n *testNode, cdir string) {
	t.Helper()
	cdir, cid := clientID(t)
	return startNode(t, sshNodeConfig(cid)), cdir
}

func sshNodeConfig(cid string) string {
	return fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\nscopes = [\"ssh:connect\", \"ssh:forward\", \"ssh:remote-forward\", \"ssh:shell\"]\n\n"+
		"[ssh]\nexec = true\n\n[ssh.policy]\nforward = [\"allow localhost\", \"allow 127.0.0.1\"]\n", cid)
}

// webServer serves a fixed text on 127.0.0.1 until the test ends.
func webServer(t *testing.T) (url string, port uint16) {
	t.Helper()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from web")
	}))
	t.Cleanup(web.Close)
	return web.URL, netip.MustParseAddrPort(web.Listener.Addr().String()).Port()
}

// curl fetches url with extra options and returns its output.
func curl(t *testing.T, extra ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, coretest.RequireTool(t, "curl"), append([]string{"-sS", "--noproxy", "", "--max-time", "10"}, extra...)...).CombinedOutput()
	return string(out), err
}

// socksReply sends a no-auth request with command cmd for ip:port and
// returns the reply code.
func socksReply(t *testing.T, proxy string, cmd byte, ip string, port uint16) byte {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := append([]byte{5, 1, 0, 5, cmd, 0, 1}, netip.MustParseAddr(ip).AsSlice()...)
	if _, err := c.Write(binary.BigEndian.AppendUint16(req, port)); err != nil {
		t.Fatal(err)
	}
	var reply [2 + 10]byte // method choice, then a reply with an IPv4 address
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		t.Fatalf("socks reply: %v", err)
	}
	return reply[3]
}

func TestSocksCommand(t *testing.T) {
	coretest.RequireTool(t, "curl")
	n, cdir := sshNode(t)
	url, port := webServer(t)
	p := startCommand(t, "socks", n.addr, "--listen", "127.0.0.1:0", "--data-dir", cdir)
	proxy := p.logMatch(t, `msg="socks listening" addr=(\S+)`)[1]

	// The node resolves the name (--socks5-hostname), or curl does.
	for _, args := range [][]string{
		{"--socks5-hostname", proxy, fmt.Sprintf("http://localhost:%d/", port)},
		{"--socks5", proxy, url + "/"},
	} {
		if out, err := curl(t, args...); err != nil || out != "hello from web" {
			t.Errorf("curl %v: %v\n%s", args, err, out)
		}
	}
	for _, tc := range []struct {
		name string
		cmd  byte
		ip   string
		want byte
	}{
		{"bind", 2, "127.0.0.1", 0x07},
		{"udp associate", 3, "0.0.0.0", 0x07},
		{"denied by the node's rules", 1, "192.0.2.1", 0x02},
	} {
		if got := socksReply(t, proxy, tc.cmd, tc.ip, 80); got != tc.want {
			t.Errorf("%s: reply %#x, want %#x", tc.name, got, tc.want)
		}
	}
	if strings.Contains(p.logText(), "192.0.2.1") || strings.Contains(n.logText(), "192.0.2.1") {
		t.Error("a destination reached a log")
	}

	// With a username and password.
	pwFile := filepath.Join(t.TempDir(), "pw")
	writeFile(t, pwFile, "s3cret\n")
	pa := startCommand(t, "socks", n.addr, "--listen", "127.0.0.1:0", "--user", "me", "--password-file", pwFile, "--data-dir", cdir)
	proxy = pa.logMatch(t, `msg="socks listening" addr=(\S+)`)[1]
	if out, err := curl(t, "--socks5-hostname", proxy, "--proxy-user", "me:s3cret", url+"/"); err != nil || out != "hello from web" {
		t.Errorf("curl with the password: %v\n%s", err, out)
	}
	if out, err := curl(t, "--socks5-hostname", proxy, "--proxy-user", "me:wrong", url+"/"); err == nil {
		t.Errorf("curl with a wrong password got through: %s", out)
	}
}

func TestForwardCommand(t *testing.T) {
	coretest.RequireTool(t, "curl")
	n, cdir := sshNode(t)
	_, port := webServer(t)
	target := fmt.Sprintf("localhost:%d", port)
	p := startCommand(t, "forward", n.addr, "-L", "127.0.0.1:0:"+target, "-R", "127.0.0.1:0:"+target, "--data-dir", cdir)
	local := p.logMatch(t, `msg="local forward listening" listen=(\S+)`)[1]
	remote := p.logMatch(t, `msg="remote forward listening on the node" listen=(\S+)`)[1]
	for _, addr := range []string{local, remote} {
		if out, err := curl(t, "http://"+addr+"/"); err != nil || out != "hello from web" {
			t.Fatalf("curl through %s: %v\n%s", addr, err, out)
		}
	}

	// Restart the node on the same port: both forwards work again.
	if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	n.waitLog(t, `msg=stopped`)
	startNodeIn(t, n.dir, "", "--listen", strings.SplitN(n.addr, "@", 2)[1])
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range []string{remote, local} {
		for {
			out, err := curl(t, "http://"+addr+"/")
			if err == nil && out == "hello from web" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("curl through %s after the restart: %v\n%s\nforward log:\n%s", addr, err, out, p.logText())
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	p.waitLog(t, `msg="(ssh|fwd) remote forward restored"`)
}

// TestForwardProtocols runs -L and -R over each --forward-protocol and
// network against a node that offers both.
func TestForwardProtocols(t *testing.T) {
	coretest.RequireTool(t, "curl")
	n, cdir := sshNode(t)
	_, port := webServer(t)
	target := fmt.Sprintf("localhost:%d", port)
	for _, tc := range []struct{ proto, network, want string }{
		{"auto", "quic", `msg="forwarding over alknet/fwd"`},
		{"fwd", "tcp", `msg="forwarding over alknet/fwd"`},
		{"ssh", "quic", `msg="forwarding over SSH channels"`},
		{"ssh", "tcp", `msg="forwarding over SSH channels"`},
	} {
		t.Run(tc.proto+" "+tc.network, func(t *testing.T) {
			p := startCommand(t, "forward", n.addr, "--forward-protocol", tc.proto, "--network", tc.network,
				"-L", "127.0.0.1:0:"+target, "-R", "127.0.0.1:0:"+target, "--data-dir", cdir)
			local := p.logMatch(t, `msg="local forward listening" listen=(\S+)`)[1]
			remote := p.logMatch(t, `msg="remote forward listening on the node" listen=(\S+)`)[1]
			p.waitLog(t, tc.want)
			for _, addr := range []string{local, remote} {
				if out, err := curl(t, "http://"+addr+"/"); err != nil || out != "hello from web" {
					t.Fatalf("curl through %s: %v\n%s", addr, err, out)
				}
			}
		})
	}
	if _, stderr, err := runErr(t, "", "forward", n.addr, "--forward-protocol", "carrier-pigeon", "-L", "0:"+target, "--data-dir", cdir); err == nil || !strings.Contains(stderr, "want fwd, ssh or auto") {
		t.Errorf("a bad --forward-protocol: %v %s", err, stderr)
	}
}

// TestForwardRemoteAllocatedPort asks the node for a port of its choice
// (-R 0:..., on its loopback by default) over each protocol: the log says
// which port the node bound, as OpenSSH's "Allocated port N for remote
// forward", and a connection to it there reaches the target.
func TestForwardRemoteAllocatedPort(t *testing.T) {
	coretest.RequireTool(t, "curl")
	n, cdir := sshNode(t)
	_, port := webServer(t)
	target := fmt.Sprintf("127.0.0.1:%d", port)
	for _, tc := range []struct{ proto, spec, host string }{
		{"fwd", "0:" + target, "localhost"},
		{"ssh", "0:" + target, "localhost"},
		{"fwd", "127.0.0.1:0:" + target, "127.0.0.1"},
		{"ssh", "127.0.0.1:0:" + target, "127.0.0.1"},
	} {
		t.Run(tc.proto+" "+tc.host, func(t *testing.T) {
			p := startCommand(t, "forward", n.addr, "--forward-protocol", tc.proto, "-R", tc.spec, "--data-dir", cdir)
			m := p.logMatch(t, `msg="remote forward listening on the node" listen=(\S+) port=(\d+)`)
			if m[2] == "0" || m[1] != tc.host+":"+m[2] {
				t.Fatalf("logged listen=%s port=%s, want %s and the port the node bound", m[1], m[2], tc.host)
			}
			if out, err := curl(t, "http://"+m[1]+"/"); err != nil || out != "hello from web" {
				t.Fatalf("curl through the node's port %s: %v\n%s", m[1], err, out)
			}
		})
	}
}

// TestForwardFallsBackToSSH points forward at a node that serves
// alknet/ssh but not alknet/fwd (an older node): auto falls back to SSH
// channels, and --forward-protocol fwd fails saying why.
func TestForwardFallsBackToSSH(t *testing.T) {
	coretest.RequireTool(t, "curl")
	cdir, cid := clientID(t)
	_, port := webServer(t)
	nid, err := core.ParseNodeID(cid)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := core.NewDirectory([]core.PeerEntry{{ID: "me", NodeIDs: []core.NodeID{nid}, Scopes: []string{ssh.ScopeConnect, ssh.ScopeForward}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	rule, err := ssh.ParseRule("allow 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	key := coretest.NewKey(t)
	srv, err := ssh.New(ssh.Config{HostKey: key, Identities: live, Policy: func() *ssh.Policy { return &ssh.Policy{Forward: []ssh.Rule{rule}} }})
	if err != nil {
		t.Fatal(err)
	}
	node := coretest.Start(t, core.Config{Key: key, Identities: live}, sshOnly{srv})
	target := fmt.Sprintf("127.0.0.1:%d", port)

	p := startCommand(t, "forward", node.Addr, "-L", "127.0.0.1:0:"+target, "--data-dir", cdir)
	local := p.logMatch(t, `msg="local forward listening" listen=(\S+)`)[1]
	p.waitLog(t, `msg="forwarding over SSH channels: the node does not offer alknet/fwd"`)
	if out, err := curl(t, "http://"+local+"/"); err != nil || out != "hello from web" {
		t.Fatalf("curl through the fallback: %v\n%s", err, out)
	}
	_, stderr, err := runErr(t, "", "forward", node.Addr, "--forward-protocol", "fwd", "-L", "127.0.0.1:0:"+target, "--data-dir", cdir)
	if err == nil || !strings.Contains(stderr, "does not offer alknet/fwd") {
		t.Errorf("--forward-protocol fwd against a node without it: %v\n%s", err, stderr)
	}
}

// sshOnly serves an ssh.Server on alknet/ssh alone.
type sshOnly struct{ *ssh.Server }

func (sshOnly) ALPNs() []string { return []string{ssh.ALPN} }

func TestSSHCommand(t *testing.T) {
	n, cdir := sshNode(t)
	if out := run(t, "", "ssh", n.addr, "--data-dir", cdir, "echo", "ok"); out != "ok\n" {
		t.Errorf("ssh echo ok printed %q", out)
	}
	if out := run(t, "through stdin\n", "ssh", n.addr, "--data-dir", cdir, "cat"); out != "through stdin\n" {
		t.Errorf("ssh cat printed %q", out)
	}
	_, stderr, err := runErr(t, "", "ssh", n.addr, "--data-dir", cdir, "sh", "-c", "'exit 3'")
	if code := exitCode(err); code != 3 {
		t.Errorf("exit 3: status %d (%v) %s", code, err, stderr)
	}
	// Without a shell, the script on stdin runs.
	if out := run(t, "echo from script\n", "ssh", n.addr, "--data-dir", cdir); out != "from script\n" {
		t.Errorf("ssh with a script on stdin printed %q", out)
	}
	// An unknown key is refused.
	other, _ := clientID(t)
	if _, _, err := runErr(t, "", "ssh", n.addr, "--data-dir", other, "true"); err == nil {
		t.Error("ssh with an unknown key succeeded")
	}
}

// TestSSHCommandPTY runs `alknet ssh` on a terminal: the shell gets a PTY
// of the terminal's size, and a resize reaches it.
func TestSSHCommandPTY(t *testing.T) {
	n, cdir := sshNode(t)
	ptm, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptm.Close()
	if err := pty.Setsize(ptm, &pty.Winsize{Rows: 33, Cols: 101}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "ssh", n.addr, "--data-dir", cdir)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=", "TERM=xterm")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var (
		mu     sync.Mutex
		screen []byte
	)
	shown := func() string {
		mu.Lock()
		defer mu.Unlock()
		return string(screen)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			mu.Lock()
			screen = append(screen, buf[:n]...)
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(shown(), what) {
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("terminal never showed %q:\n%s", what, shown())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	write := func(s string) {
		t.Helper()
		if _, err := ptm.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	// The arithmetic keeps the echoed input from matching the output.
	write("echo size $(stty size) term $TERM tty $(tty | cut -c1-9) = $((6*7))\n")
	waitFor("size 33 101 term xterm tty /dev/pts/ = 42")
	if err := pty.Setsize(ptm, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(shown(), "resized 40 120") {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the resize never arrived:\n%s", shown())
		}
		write("echo resized $(stty size)\n")
		time.Sleep(200 * time.Millisecond)
	}
	write("exit 7\n")
	err = cmd.Wait()
	if code := exitCode(err); code != 7 {
		t.Errorf("exit status %d (%v), want 7:\n%s", code, err, shown())
	}
	ptm.Close()
	<-copied
}

// TestForwardCannotReachTheNodeItself attacks a real node as a peer holding
// only ssh:connect and ssh:forward, under the rules "deny 127.0.0.0/8",
// "deny ::1", "allow *" (and one explicitly allowed loopback port): through
// `alknet forward` and stock `ssh -W` (via `alknet pipe`), 0.0.0.0 and [::]
// must not reach a service bound to 127.0.0.1 nor the node's own /metrics,
// while the allowed port still works. Then, on a node whose rules do allow
// this host and whose http trusts loopback, a tunnelled /metrics request is
// still refused while a local one is served.
func TestForwardCannotReachTheNodeItself(t *testing.T) {
	curlBin := coretest.RequireTool(t, "curl")
	cdir, cid := clientID(t)
	secretURL, secretPort := webServer(t) // bound to 127.0.0.1, meant to stay private
	_, allowedPort := webServer(t)
	peer := fmt.Sprintf("[[peers]]\nid = \"tunnel\"\nkeys = [%q]\nscopes = [\"ssh:connect\", \"ssh:forward\"]\n\n", cid)
	n := startNode(t, peer+fmt.Sprintf("[http]\ntrust_loopback = false\n\n[ssh.policy]\nforward = [\"allow 127.0.0.1:%d\", \"deny 127.0.0.0/8\", \"deny ::1\", \"allow *\"]\n", allowedPort))
	nodePort := netip.MustParseAddrPort(n.addr[strings.IndexByte(n.addr, '@')+1:]).Port()

	// get fetches url with curl and returns its output and HTTP status
	// ("000" when no response came).
	get := func(url string) (string, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, curlBin, "-sk", "--noproxy", "*", "--max-time", "10", "-w", "\n%{http_code}", url).Output()
		i := strings.LastIndexByte(string(out), '\n')
		if i < 0 {
			return "", string(out)
		}
		return string(out[:i]), string(out[i+1:])
	}
	if _, code := get(secretURL + "/"); code != "200" {
		t.Fatalf("the private service itself: %s", code)
	}
	// Loopback alone does not open the node's /metrics with trust_loopback
	// off.
	if body, code := get(fmt.Sprintf("https://127.0.0.1:%d/metrics", nodePort)); code != "401" {
		t.Fatalf("/metrics from loopback without a token: %s %.80s", code, body)
	}

	targets := []struct {
		name, dest, path, want string
	}{
		{"0.0.0.0 to a loopback service", fmt.Sprintf("0.0.0.0:%d", secretPort), "http", "000"},
		{"[::] to a loopback service", fmt.Sprintf("[::]:%d", secretPort), "http", "000"},
		{"0 to a loopback service", fmt.Sprintf("0:%d", secretPort), "http", "000"},
		{"0.0.0.0 to the node's /metrics", fmt.Sprintf("0.0.0.0:%d", nodePort), "https", "000"},
		{"the allowed loopback port", fmt.Sprintf("127.0.0.1:%d", allowedPort), "http", "200"},
	}
	args := []string{"forward", n.addr, "--data-dir", cdir}
	for _, tc := range targets {
		args = append(args, "-L", "127.0.0.1:0:"+tc.dest)
	}
	p := startCommand(t, args...)
	p.waitLog(t, fmt.Sprintf(`(?s)(msg="local forward listening".*){%d}`, len(targets)))
	listens := regexp.MustCompile(`msg="local forward listening" listen=(\S+)`).FindAllStringSubmatch(p.logText(), -1)
	for i, tc := range targets {
		path := "/"
		if tc.path == "https" {
			path = "/metrics"
		}
		if body, code := get(tc.path + "://" + listens[i][1] + path); code != tc.want {
			t.Errorf("alknet forward, %s: status %s %.80s, want %s", tc.name, code, body, tc.want)
		}
	}
	// The refusals were the rules' ("administratively prohibited"), not
	// failed connects.
	if got := strings.Count(n.logText(), `reason="forwarding denied"`); got < len(targets)-1 {
		t.Errorf("node refused %d channels by policy, want %d:\n%s", got, len(targets)-1, n.logText())
	}

	t.Run("stock ssh -W", func(t *testing.T) {
		r := newSSHRig(t, fmt.Sprintf("[ssh.policy]\nforward = [\"allow 127.0.0.1:%d\", \"deny 127.0.0.0/8\", \"deny ::1\", \"allow *\"]\n", allowedPort))
		for _, dest := range []string{fmt.Sprintf("0.0.0.0:%d", secretPort), fmt.Sprintf("[::]:%d", secretPort), fmt.Sprintf("2130706433:%d", secretPort)} {
			if out, err := r.ssh(t, "GET / HTTP/1.0\r\n\r\n", "-W", dest, "laptop@node"); err == nil || !strings.Contains(out, "administratively prohibited") {
				t.Errorf("ssh -W %s: %v\n%s", dest, err, out)
			}
		}
		if out, err := r.ssh(t, "GET / HTTP/1.0\r\n\r\n", "-W", fmt.Sprintf("127.0.0.1:%d", allowedPort), "laptop@node"); err != nil || !strings.Contains(out, "hello from web") {
			t.Errorf("ssh -W to the allowed port: %v\n%s", err, out)
		}
	})

	t.Run("tunnelled connections get no loopback trust", func(t *testing.T) {
		m := startNode(t, peer+"[http]\ntrust_loopback = true\n\n[ssh.policy]\nforward = [\"allow self\"]\n")
		mPort := netip.MustParseAddrPort(m.addr[strings.IndexByte(m.addr, '@')+1:]).Port()
		if body, code := get(fmt.Sprintf("https://127.0.0.1:%d/metrics", mPort)); code != "200" {
			t.Fatalf("/metrics from loopback with trust_loopback: %s %.80s", code, body)
		}
		f := startCommand(t, "forward", m.addr, "--data-dir", cdir, "-L", fmt.Sprintf("127.0.0.1:0:0.0.0.0:%d", mPort))
		local := f.logMatch(t, `msg="local forward listening" listen=(\S+)`)[1]
		if body, code := get("https://" + local + "/metrics"); code != "401" {
			t.Errorf("/metrics through the node's own forwarding: %s %.80s, want 401", code, body)
		}
	})
}

// TestLongRunningClientsStopWhenRefused: forward and socks redial a dropped
// connection, but once the node refuses their key they exit non-zero within
// seconds, saying so, instead of retrying for ever.
func TestLongRunningClientsStopWhenRefused(t *testing.T) {
	for _, tc := range []struct{ name, network, revoke string }{
		{"forward revoked quic", "quic", "removed"},
		{"forward disabled tcp", "tcp", "disabled"},
		{"socks revoked quic", "quic", "removed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cdir, cid := clientID(t)
			n := startNode(t, sshNodeConfig(cid))
			args := []string{"forward", n.addr, "-L", "127.0.0.1:0:localhost:1", "--network", tc.network, "--data-dir", cdir}
			ready := `msg="local forward listening"`
			if strings.HasPrefix(tc.name, "socks") {
				args = []string{"socks", n.addr, "--listen", "127.0.0.1:0", "--network", tc.network, "--data-dir", cdir}
				ready = `msg="socks listening"`
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
			var stderr coretest.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var waitErr error
			exited := make(chan struct{})
			go func() { waitErr = cmd.Wait(); close(exited) }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				<-exited
			})
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(stderr.String(), ready) {
				if time.Now().After(deadline) {
					t.Fatalf("the client never got ready:\n%s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}

			cfg := "[ssh]\nexec = true\n"
			if tc.revoke == "disabled" {
				cfg = strings.Replace(sshNodeConfig(cid), "[ssh]", "enabled = false\n\n[ssh]", 1)
			}
			start := time.Now()
			writeFile(t, filepath.Join(n.dir, "alknet.toml"), cfg)
			select {
			case <-exited:
				var exit *exec.ExitError
				if !errors.As(waitErr, &exit) || exit.ExitCode() == 0 {
					t.Errorf("the client exited with %v, want a non-zero status", waitErr)
				}
				if !strings.Contains(stderr.String(), "refused this key") {
					t.Errorf("the client did not say its key was refused:\n%s", stderr.String())
				}
				t.Logf("exited %v after the revocation", time.Since(start))
			case <-time.After(10 * time.Second):
				t.Fatalf("the client still runs 10s after its key was revoked:\n%s", stderr.String())
			}
		})
	}
}
