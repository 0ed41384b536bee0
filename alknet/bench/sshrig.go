package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Ciphers of the OpenSSH comparison: sshd offers both, and each OpenSSH
// variant pins one with -c. alknet's Go client (golang.org/x/crypto/ssh)
// picks AES128GCM, the first of its defaults.
const (
	AES128GCM        = "aes128-gcm@openssh.com"
	ChaCha20Poly1305 = "chacha20-poly1305@openssh.com"
)

// sftpServerPaths are where distributions install OpenSSH's sftp-server.
var sftpServerPaths = []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server"}

// sshRig is what the SSH scenario measures: an OpenSSH sshd and an
// `alknet serve` node on 127.0.0.1, both knowing one client key, an iperf3
// server and an HTTP server as forwarding targets, and a directory both
// serve over SFTP. Close stops it all and removes the directory. Across an
// emulated link (startSSHRigAt) the servers listen on namespace B's
// address and run there, and the stock clients run in namespace A.
type sshRig struct {
	bin   string   // the alknet binary
	dir   string   // everything temporary
	place rigPlace // where the servers and the clients run

	keyFile    string // the client's OpenSSH key
	clientDir  string // the client's alknet data dir (its node key)
	knownHosts string // both servers' host keys

	node     *child
	nodeDir  string // the node's data dir; its git/ is served over alknet/git
	nodeAddr string // <nodeid>@<host>:<port>

	sshd     *child
	sshdPort int
	user     string // the login name at sshd: the user running the bench
	sftpSrv  string // sshd's sftp-server

	iperf     *child
	iperfPort int
	http      *httptest.Server

	srv   string // served over SFTP by both: the node's root, an absolute path at sshd
	local string // the client's side of SFTP transfers

	sftpSize int64    // size of the file the SFTP tests transfer, once made
	sftpSum  [32]byte // its SHA-256
}

// nodeHostAlias names the alknet node in known_hosts.
const nodeHostAlias = "alknet-node"

// sshPeerID is the client's identity on the node.
const sshPeerID = "bench"

// rigPlace is where a rig of child processes runs: its servers listen on
// host (127.0.0.1 when empty) and are started behind the server prefix,
// its clients behind the client prefix (both empty on the loopback;
// `ip netns exec NAMESPACE` across an emulated link). nodeConfig is
// appended to the node's alknet.toml.
type rigPlace struct {
	host           string
	server, client []string
	nodeConfig     string
}

// linkPlace runs the servers in l's namespace B, on its address, and the
// clients in namespace A.
func linkPlace(l *Link) rigPlace {
	return rigPlace{
		host:   l.Addr(SideB).String(),
		server: []string{"ip", "netns", "exec", l.Namespace(SideB)},
		client: []string{"ip", "netns", "exec", l.Namespace(SideA)},
	}
}

// addr is the servers' address.
func (p rigPlace) addr() string {
	if p.host == "" {
		return "127.0.0.1"
	}
	return p.host
}

// wrap returns the command line of name args behind prefix.
func wrap(prefix []string, name string, args ...string) (string, []string) {
	if len(prefix) == 0 {
		return name, args
	}
	return prefix[0], append(append(prefix[1:len(prefix):len(prefix)], name), args...)
}

// serverCmd and clientCmd return a server's and a client's command line.
func (p rigPlace) serverCmd(name string, args ...string) (string, []string) {
	return wrap(p.server, name, args...)
}
func (p rigPlace) clientCmd(name string, args ...string) (string, []string) {
	return wrap(p.client, name, args...)
}

// startSSHRig starts everything but the iperf3 server, which only the
// tunnel test needs (startIperf), on the loopback.
func startSSHRig(ctx context.Context, bin string) (*sshRig, error) {
	return startSSHRigAt(ctx, bin, rigPlace{})
}

// startSSHRigAt is startSSHRig with the servers and clients at place.
func startSSHRigAt(ctx context.Context, bin string, place rigPlace) (_ *sshRig, err error) {
	for _, tool := range []string{"sshd", "ssh", "ssh-keygen"} {
		if _, err := lookTool(tool); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "alknet-bench-ssh-")
	if err != nil {
		return nil, err
	}
	r := &sshRig{bin: bin, dir: dir, place: place, srv: filepath.Join(dir, "srv"), local: filepath.Join(dir, "local")}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	for _, d := range []string{r.srv, r.local} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	r.user = u.Username
	r.keyFile = filepath.Join(dir, "id_ed25519")
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	for _, k := range []string{r.keyFile, hostKey} {
		if _, err := runChild(ctx, 10*time.Second, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alknet-bench", "-f", k); err != nil {
			return nil, err
		}
	}
	pub, err := os.ReadFile(r.keyFile + ".pub")
	if err != nil {
		return nil, err
	}
	clientKey := strings.TrimSpace(string(pub))

	r.clientDir = filepath.Join(dir, "client")
	clientID, _, err := r.alknetID(ctx, r.clientDir)
	if err != nil {
		return nil, err
	}
	nodeDir := filepath.Join(dir, "node")
	r.nodeDir = nodeDir
	_, nodeKey, err := r.alknetID(ctx, nodeDir)
	if err != nil {
		return nil, err
	}
	config := fmt.Sprintf("[[peers]]\nid = %q\nkeys = [%q, %q]\n"+
		"scopes = [\"ssh:connect\", \"ssh:forward\", \"ssh:shell\", \"sftp:read\", \"sftp:write\", \"git:read\"]\n\n"+
		"[ssh]\nexec = true\n\n[ssh.policy]\nforward = [\"allow %s\"]\n\n[sftp.roots]\n%s = %q\n",
		sshPeerID, clientKey, clientID, place.addr(), sshPeerID, r.srv) + place.nodeConfig
	if err := os.WriteFile(filepath.Join(nodeDir, "alknet.toml"), []byte(config), 0o600); err != nil {
		return nil, err
	}
	name, args := place.serverCmd(bin, "serve", "--data-dir", nodeDir, "--listen", net.JoinHostPort(place.addr(), "0"))
	node, m, err := startChild(ctx, regexp.MustCompile(`msg=listening addr=(\S+) node=(\S+)`), name, args...)
	if err != nil {
		return nil, err
	}
	r.node, r.nodeAddr = node, m[2]+"@"+m[1]

	if err := r.startSSHD(ctx, hostKey, clientKey); err != nil {
		return nil, err
	}
	sshdKey, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	r.knownHosts = filepath.Join(dir, "known_hosts")
	hosts := fmt.Sprintf("%s %s\n[%s]:%d %s\n", nodeHostAlias, nodeKey, place.addr(), r.sshdPort, keyField(string(sshdKey)))
	if err := os.WriteFile(r.knownHosts, []byte(hosts), 0o600); err != nil {
		return nil, err
	}

	r.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, socksBody)
	}))
	return r, nil
}

// socksBody is the small page the SOCKS test fetches.
const socksBody = "alknet-bench: a small HTTP response for the SOCKS5 latency test\n"

// lookTool finds an executable of the comparison; sshd may live outside
// PATH.
func lookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if name == "sshd" {
		if _, err := os.Stat("/usr/sbin/sshd"); err == nil {
			return "/usr/sbin/sshd", nil
		}
	}
	return "", fmt.Errorf("bench: ssh: %s not found (Debian/Ubuntu: apt-get install openssh-client openssh-server iperf3)", name)
}

// keyField returns "TYPE BASE64" of an OpenSSH public key line.
func keyField(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return strings.TrimSpace(line)
	}
	return f[0] + " " + f[1]
}

// alknetID creates (or opens) the data directory dir and returns its NodeID
// and its SSH public key, "ssh-ed25519 BASE64".
func (r *sshRig) alknetID(ctx context.Context, dir string) (id, sshKey string, err error) {
	out, err := runChild(ctx, 30*time.Second, "", r.bin, "id", "--data-dir", dir)
	if err != nil {
		return "", "", err
	}
	// The NodeID line and the key line end the output; a new vault's
	// notes (on stderr, here mixed in) come first.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	n := len(lines)
	if n < 2 || !strings.HasPrefix(lines[n-1], "ssh-ed25519 ") {
		return "", "", fmt.Errorf("bench: alknet id: unexpected output ending %q", lastLines(string(out), 2))
	}
	return strings.TrimSpace(lines[n-2]), keyField(lines[n-1]), nil
}

// startSSHD writes sshd's configuration and starts it in the foreground on
// a free port of the rig's address. Running as root, sshd insists on its privilege
// separation directory, which is created if missing.
func (r *sshRig) startSSHD(ctx context.Context, hostKey, clientKey string) error {
	sshd, err := lookTool("sshd")
	if err != nil {
		return err
	}
	for _, p := range sftpServerPaths {
		if _, err := os.Stat(p); err == nil {
			r.sftpSrv = p
			break
		}
	}
	if r.sftpSrv == "" {
		return fmt.Errorf("bench: ssh: no sftp-server in %v", sftpServerPaths)
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return fmt.Errorf("bench: sshd privilege separation directory: %w", err)
		}
	}
	authorized := filepath.Join(r.dir, "authorized_keys")
	if err := os.WriteFile(authorized, []byte(clientKey+"\n"), 0o600); err != nil {
		return err
	}
	if r.sshdPort, err = freePort(); err != nil {
		return err
	}
	config := strings.Join([]string{
		"ListenAddress " + net.JoinHostPort(r.place.addr(), strconv.Itoa(r.sshdPort)),
		"HostKey " + hostKey,
		"PidFile none",
		"UsePAM no",
		"AuthorizedKeysFile " + authorized,
		"StrictModes no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowTcpForwarding yes",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"Ciphers " + AES128GCM + "," + ChaCha20Poly1305,
		"Subsystem sftp " + r.sftpSrv,
	}, "\n") + "\n"
	cfgFile := filepath.Join(r.dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		return err
	}
	name, args := r.place.serverCmd(sshd, "-D", "-e", "-f", cfgFile)
	r.sshd, _, err = startChild(ctx, regexp.MustCompile(`Server listening on `+regexp.QuoteMeta(r.place.addr())+` port`), name, args...)
	return err
}

// startIperf starts `iperf3 -s` on a free port of the rig's address.
func (r *sshRig) startIperf(ctx context.Context) error {
	iperf, err := lookTool("iperf3")
	if err != nil {
		return err
	}
	if r.iperfPort, err = freePort(); err != nil {
		return err
	}
	name, args := r.place.serverCmd(iperf, "-s", "-B", r.place.addr(), "-p", strconv.Itoa(r.iperfPort), "--forceflush")
	r.iperf, _, err = startChild(ctx, regexp.MustCompile(`Server listening on`), name, args...)
	return err
}

// stopIperf stops the iperf3 server, if running.
func (r *sshRig) stopIperf() error {
	if r.iperf == nil {
		return nil
	}
	err := r.iperf.stop()
	r.iperf = nil
	return err
}

// Close stops every server and removes the temporary directory.
func (r *sshRig) Close() error {
	var errs []error
	if r.http != nil {
		r.http.Close()
	}
	errs = append(errs, r.stopIperf())
	for _, c := range []*child{r.sshd, r.node} {
		if c != nil {
			errs = append(errs, c.stop())
		}
	}
	errs = append(errs, os.RemoveAll(r.dir))
	return errors.Join(errs...)
}

// sshOptions are the stock ssh (and sftp) options every OpenSSH variant
// shares: the client key only, both servers' keys checked, no prompts.
func (r *sshRig) sshOptions() []string {
	return []string{
		"-F", "none", "-i", r.keyFile,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + r.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
	}
}

// toNode returns the ssh options and destination that reach the node
// through `alknet pipe --alpn alpn`; cipher "" leaves the choice to the
// client.
func (r *sshRig) toNode(cipher string) []string {
	opts := append(r.sshOptions(), "-o", "HostKeyAlias="+nodeHostAlias, "-o", "ProxyCommand="+r.pipeCommand("alknet/ssh"))
	return append(withCipher(opts, cipher), sshPeerID+"@"+nodeHostAlias)
}

// toSSHD returns the ssh options and destination that reach sshd.
func (r *sshRig) toSSHD(cipher string) []string {
	opts := append(r.sshOptions(), "-o", "Port="+strconv.Itoa(r.sshdPort))
	return append(withCipher(opts, cipher), r.user+"@"+r.place.addr())
}

func withCipher(opts []string, cipher string) []string {
	if cipher == "" {
		return opts
	}
	return append(opts, "-c", cipher)
}

// pipeCommand is the `alknet pipe` command line that opens alpn on the
// node, with extra flags.
func (r *sshRig) pipeCommand(alpn string, flags ...string) string {
	return strings.Join(append(append([]string{r.bin, "pipe", "--alpn", alpn, "--data-dir", r.clientDir}, flags...), r.nodeAddr), " ")
}

// makeFile writes size pseudo-random bytes to path and returns their
// SHA-256.
func makeFile(path string, size int64) ([32]byte, error) {
	f, err := os.Create(path)
	if err != nil {
		return [32]byte{}, err
	}
	h := sha256.New()
	var seed [32]byte
	rng := rand.NewChaCha8(seed)
	_, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(rng, size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, err
}

// fileSum returns the SHA-256 of the file at path.
func fileSum(path string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	h.Sum(sum[:0])
	return sum, nil
}

// hostPort returns "127.0.0.1:port".
func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// serverPort returns "<the rig's address>:port".
func (r *sshRig) serverPort(port int) string {
	return net.JoinHostPort(r.place.addr(), strconv.Itoa(port))
}
