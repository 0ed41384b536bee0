package sshbench

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
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// Ciphers of the OpenSSH comparison: sshd offers both, and each OpenSSH
// variant pins one with -c. alknet's Go client (golang.org/x/crypto/ssh)
// picks AES128GCM, the first of its defaults.
const (
	AES128GCM        = "aes128-gcm@openssh.com"
	chaCha20Poly1305 = "chacha20-poly1305@openssh.com"
)

// sftpServerPaths are where distributions install OpenSSH's sftp-server.
var sftpServerPaths = []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server"}

// SSHRig is what the SSH scenario measures: an OpenSSH sshd and an
// `alknet serve` node on 127.0.0.1, both knowing one client key, an iperf3
// server and an HTTP server as forwarding targets, and a directory both
// serve over SFTP. Close stops it all and removes the directory. Across an
// emulated link (startSSHRigAt) the servers listen on namespace B's
// address and run there, and the stock clients run in namespace A.
type SSHRig struct {
	Bin   string      // the alknet binary
	Dir   string      // everything temporary
	Place netem.Place // where the servers and the clients run

	keyFile    string // the client's OpenSSH key
	clientDir  string // the client's alknet data dir (its node key)
	knownHosts string // both servers' host keys

	node     *harness.Child
	NodeDir  string // the node's data dir; its git/ is served over alknet/git
	NodeAddr string // <nodeid>@<host>:<port>

	sshd     *harness.Child
	SshdPort int
	User     string // the login name at sshd: the user running the bench
	sftpSrv  string // sshd's sftp-server

	iperf     *harness.Child
	IperfPort int
	http      *httptest.Server

	Srv   string // served over SFTP by both: the node's root, an absolute path at sshd
	local string // the client's side of SFTP transfers

	sftpSize int64    // size of the file the SFTP tests transfer, once made
	sftpSum  [32]byte // its SHA-256
}

// nodeHostAlias names the alknet node in known_hosts.
const nodeHostAlias = "alknet-node"

// sshPeerID is the client's identity on the node.
const sshPeerID = "bench"

// startSSHRig starts everything but the iperf3 server, which only the
// tunnel test needs (startIperf), on the loopback.
func startSSHRig(ctx context.Context, bin string) (*SSHRig, error) {
	return StartSSHRigAt(ctx, bin, netem.Place{})
}

// StartSSHRigAt is startSSHRig with the servers and clients at place.
func StartSSHRigAt(ctx context.Context, bin string, place netem.Place) (_ *SSHRig, err error) {
	for _, tool := range []string{"sshd", "ssh", "ssh-keygen"} {
		if _, err := harness.LookTool(tool); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "alknet-bench-ssh-")
	if err != nil {
		return nil, err
	}
	r := &SSHRig{Bin: bin, Dir: dir, Place: place, Srv: filepath.Join(dir, "srv"), local: filepath.Join(dir, "local")}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	for _, d := range []string{r.Srv, r.local} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	r.User = u.Username
	r.keyFile = filepath.Join(dir, "id_ed25519")
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	for _, k := range []string{r.keyFile, hostKey} {
		if _, err := harness.RunChild(ctx, 10*time.Second, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alknet-bench", "-f", k); err != nil {
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
	r.NodeDir = nodeDir
	_, nodeKey, err := r.alknetID(ctx, nodeDir)
	if err != nil {
		return nil, err
	}
	config := fmt.Sprintf("[[peers]]\nid = %q\nkeys = [%q, %q]\n"+
		"scopes = [\"ssh:connect\", \"ssh:forward\", \"ssh:shell\", \"sftp:read\", \"sftp:write\", \"git:read\"]\n\n"+
		"[ssh]\nexec = true\n\n[ssh.policy]\nforward = [\"allow %s\"]\n\n[sftp.roots]\n%s = %q\n",
		sshPeerID, clientKey, clientID, place.Addr(), sshPeerID, r.Srv) + place.NodeConfig
	if err := os.WriteFile(filepath.Join(nodeDir, "alknet.toml"), []byte(config), 0o600); err != nil {
		return nil, err
	}
	name, args := place.ServerCmd(bin, "serve", "--data-dir", nodeDir, "--listen", net.JoinHostPort(place.Addr(), "0"))
	node, m, err := harness.StartChild(ctx, regexp.MustCompile(`msg=listening addr=(\S+) node=(\S+)`), name, args...)
	if err != nil {
		return nil, err
	}
	r.node, r.NodeAddr = node, m[2]+"@"+m[1]

	if err := r.startSSHD(ctx, hostKey, clientKey); err != nil {
		return nil, err
	}
	sshdKey, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	r.knownHosts = filepath.Join(dir, "known_hosts")
	hosts := fmt.Sprintf("%s %s\n[%s]:%d %s\n", nodeHostAlias, nodeKey, place.Addr(), r.SshdPort, keyField(string(sshdKey)))
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

// keyField returns "TYPE BASE64" of an OpenSSH public key line.
func keyField(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return strings.TrimSpace(line)
	}
	return f[0] + " " + f[1]
}

// alknetID makes (or opens) the data directory dir and returns its NodeID
// and its SSH public key, "ssh-ed25519 BASE64".
func (r *SSHRig) alknetID(ctx context.Context, dir string) (id, sshKey string, err error) {
	return harness.AlknetID(ctx, r.Bin, dir)
}

// startSSHD writes sshd's configuration and starts it in the foreground on
// a free port of the rig's address. Running as root, sshd insists on its privilege
// separation directory, which is created if missing.
func (r *SSHRig) startSSHD(ctx context.Context, hostKey, clientKey string) error {
	sshd, err := harness.LookTool("sshd")
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
	authorized := filepath.Join(r.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, []byte(clientKey+"\n"), 0o600); err != nil {
		return err
	}
	if r.SshdPort, err = harness.FreePort(); err != nil {
		return err
	}
	config := strings.Join([]string{
		"ListenAddress " + net.JoinHostPort(r.Place.Addr(), strconv.Itoa(r.SshdPort)),
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
		"Ciphers " + AES128GCM + "," + chaCha20Poly1305,
		"Subsystem sftp " + r.sftpSrv,
	}, "\n") + "\n"
	cfgFile := filepath.Join(r.Dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		return err
	}
	name, args := r.Place.ServerCmd(sshd, "-D", "-e", "-f", cfgFile)
	r.sshd, _, err = harness.StartChild(ctx, regexp.MustCompile(`Server listening on `+regexp.QuoteMeta(r.Place.Addr())+` port`), name, args...)
	return err
}

// StartIperf starts `iperf3 -s` on a free port of the rig's address.
func (r *SSHRig) StartIperf(ctx context.Context) error {
	iperf, err := harness.LookTool("iperf3")
	if err != nil {
		return err
	}
	if r.IperfPort, err = harness.FreePort(); err != nil {
		return err
	}
	name, args := r.Place.ServerCmd(iperf, "-s", "-B", r.Place.Addr(), "-p", strconv.Itoa(r.IperfPort), "--forceflush")
	r.iperf, _, err = harness.StartChild(ctx, regexp.MustCompile(`Server listening on`), name, args...)
	return err
}

// StopIperf stops the iperf3 server, if running.
func (r *SSHRig) StopIperf() error {
	if r.iperf == nil {
		return nil
	}
	err := r.iperf.Stop()
	r.iperf = nil
	return err
}

// Close stops every server and removes the temporary directory.
func (r *SSHRig) Close() error {
	var errs []error
	if r.http != nil {
		r.http.Close()
	}
	errs = append(errs, r.StopIperf())
	for _, c := range []*harness.Child{r.sshd, r.node} {
		if c != nil {
			errs = append(errs, c.Stop())
		}
	}
	errs = append(errs, os.RemoveAll(r.Dir))
	return errors.Join(errs...)
}

// SSHOptions are the stock ssh (and sftp) options every OpenSSH variant
// shares: the client key only, both servers' keys checked, no prompts.
func (r *SSHRig) SSHOptions() []string {
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
func (r *SSHRig) toNode(cipher string) []string {
	opts := append(r.SSHOptions(), "-o", "HostKeyAlias="+nodeHostAlias, "-o", "ProxyCommand="+r.PipeCommand("alknet/ssh"))
	return append(cipherOptions(opts, cipher), sshPeerID+"@"+nodeHostAlias)
}

// ToSSHD returns the ssh options and destination that reach sshd.
func (r *SSHRig) ToSSHD(cipher string) []string {
	opts := append(r.SSHOptions(), "-o", "Port="+strconv.Itoa(r.SshdPort))
	return append(cipherOptions(opts, cipher), r.User+"@"+r.Place.Addr())
}

func cipherOptions(opts []string, cipher string) []string {
	if cipher == "" {
		return opts
	}
	return append(opts, "-c", cipher)
}

// PipeCommand is the `alknet pipe` command line that opens alpn on the
// node, with extra flags.
func (r *SSHRig) PipeCommand(alpn string, flags ...string) string {
	return strings.Join(append(append([]string{r.Bin, "pipe", "--alpn", alpn, "--data-dir", r.clientDir}, flags...), r.NodeAddr), " ")
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

// FileSum returns the SHA-256 of the file at path.
func FileSum(path string) ([32]byte, error) {
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

// ServerPort returns "<the rig's address>:port".
func (r *SSHRig) ServerPort(port int) string {
	return net.JoinHostPort(r.Place.Addr(), strconv.Itoa(port))
}
