package nat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netns"
)

// A Rig is issue 19's reach set-up on a [Topology] of two sites: a head
// (`alknet serve`) in the public namespace; a worker W in site 0's home,
// behind its NAT, joined to the head outbound (`serve --join`); and a
// client identity for site 1's home, behind the other NAT. The worker
// knows the client's node key and an OpenSSH key, serves ssh, sftp, git
// (its repositories under WorkerDir/git), fs and perf to it; the head lets
// the client relay. Commands run in the client's home with [Rig.Client]
// or [Rig.Alknet]. Close stops the nodes and removes the directory.
type Rig struct {
	Top *Topology
	Bin string // the alknet binary
	Dir string // everything temporary

	Head     *harness.Child
	HeadID   string
	HeadAddr string // <nodeid>@203.0.113.1:port

	Worker     *harness.Child
	WorkerID   string
	WorkerAddr string // <nodeid>@<private address>:port: what a direct dial would use
	WorkerDir  string
	// Srv is served to the client over SFTP (the client's root).
	Srv string

	ClientID  string
	ClientDir string

	keyFile    string // the client's OpenSSH key
	knownHosts string // the worker's host key, under workerHostAlias
	sshUser    string // the worker's SSH peer name for the client
}

// workerHostAlias names the worker in known_hosts and on ssh's command
// line.
const workerHostAlias = "alknet-worker"

// rigPeer is the client's identity on the worker and on the head.
const rigPeer = "client"

// Regular expressions of the nodes' logs.
var (
	listeningRE = regexp.MustCompile(`msg=listening addr=(\S+) node=(\S+)`)
)

// joinTimeout bounds the wait for the worker to register at the head.
const joinTimeout = 30 * time.Second

// StartRig starts a head in top's public namespace and a worker in its
// first site's home, joined to the head and publishing its signed
// self-description there (its private address, and the head as via),
// with bin, and makes the client's identities for the second site's home.
func StartRig(ctx context.Context, bin string, top *Topology, opt RigOptions) (_ *Rig, err error) {
	if len(top.Sites) < 2 {
		return nil, fmt.Errorf("nat: a rig needs two sites, the topology has %d", len(top.Sites))
	}
	for _, tool := range []string{"ssh-keygen"} {
		if _, err := harness.LookTool(tool); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "alknet-nat-")
	if err != nil {
		return nil, err
	}
	r := &Rig{Top: top, Bin: bin, Dir: dir, sshUser: rigPeer}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.Close())
		}
	}()
	r.Srv = filepath.Join(dir, "srv")
	if err := os.Mkdir(r.Srv, 0o700); err != nil {
		return nil, err
	}
	r.keyFile = filepath.Join(dir, "id_ed25519")
	if _, err := harness.RunChild(ctx, 10*time.Second, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alknet-nat", "-f", r.keyFile); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(r.keyFile + ".pub")
	if err != nil {
		return nil, err
	}
	clientKey := keyField(string(pub))

	headDir := filepath.Join(dir, "head")
	r.WorkerDir = filepath.Join(dir, "worker")
	r.ClientDir = filepath.Join(dir, "client")
	if r.HeadID, _, err = harness.AlknetID(ctx, bin, headDir); err != nil {
		return nil, err
	}
	workerSSHKey := ""
	if r.WorkerID, workerSSHKey, err = harness.AlknetID(ctx, bin, r.WorkerDir); err != nil {
		return nil, err
	}
	if r.ClientID, _, err = harness.AlknetID(ctx, bin, r.ClientDir); err != nil {
		return nil, err
	}
	r.knownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(r.knownHosts, []byte(workerHostAlias+" "+workerSSHKey+"\n"), 0o600); err != nil {
		return nil, err
	}

	headConfig := fmt.Sprintf("[[peers]]\nid = \"worker\"\nkeys = [%q]\nscopes = [%s]\n\n"+
		"[[peers]]\nid = %q\nkeys = [%q]\nscopes = [%s]\n",
		r.WorkerID, quoteList(headWorkerScopes), rigPeer, r.ClientID, quoteList(headClientScopes)) + opt.HeadConfig
	if err := os.WriteFile(filepath.Join(headDir, "alknet.toml"), []byte(headConfig), 0o600); err != nil {
		return nil, err
	}
	name, args := wrap(top.Public, bin, "serve", "--data-dir", headDir, "--log-level", "debug",
		"--listen", net.JoinHostPort(PublicAddr.String(), "0"))
	var m []string
	if r.Head, m, err = harness.StartChild(ctx, listeningRE, name, args...); err != nil {
		return nil, fmt.Errorf("nat: the head: %w", err)
	}
	r.HeadAddr = m[2] + "@" + m[1]

	// The worker publishes its signed self-description on the head,
	// naming the head as the way to reach it.
	workerConfig := fmt.Sprintf("[[peers]]\nid = \"head\"\nkeys = [%q]\n\n"+
		"[[peers]]\nid = %q\nkeys = [%q, %q]\nscopes = [%s]\n\n"+
		"[ssh]\nexec = true\n\n[sftp.roots]\n%s = %q\n\n[dns]\nhomes = [%q]\n",
		r.HeadID, rigPeer, clientKey, r.ClientID, quoteList(workerClientScopes), rigPeer, r.Srv, r.HeadAddr) + opt.WorkerDNS + "\n" + opt.WorkerConfig
	if err := os.WriteFile(filepath.Join(r.WorkerDir, "alknet.toml"), []byte(workerConfig), 0o600); err != nil {
		return nil, err
	}

	home := top.Sites[0]
	name, args = wrap(home.Home, bin, "serve", "--data-dir", r.WorkerDir, "--log-level", "debug",
		"--listen", net.JoinHostPort(home.Addr.String(), "0"), "--join", r.HeadAddr)
	if r.Worker, m, err = harness.StartChild(ctx, listeningRE, name, args...); err != nil {
		return nil, fmt.Errorf("nat: the worker: %w", err)
	}
	r.WorkerAddr = m[2] + "@" + m[1]
	for _, re := range []*regexp.Regexp{workerJoinedRE, workerRegisteredRE} {
		if err := r.Head.WaitOutput(ctx, re, joinTimeout); err != nil {
			return nil, fmt.Errorf("nat: the worker did not join the head: %w", err)
		}
	}
	return r, nil
}

// RigOptions adds to the rig's node configurations.
type RigOptions struct {
	// HeadConfig and WorkerConfig are appended to the head's and the
	// worker's alknet.toml.
	HeadConfig, WorkerConfig string
	// WorkerDNS are lines added to the worker's [dns] section.
	WorkerDNS string
}

// The scopes of the rig's identities: the worker's on the head (it
// registers there and publishes its record), the client's on the head (it relays through it and
// routes calls) and the client's on the worker.
var (
	headWorkerScopes   = []string{"call:worker", "dns:publish"}
	headClientScopes   = []string{"relay", "call:route"}
	workerClientScopes = []string{"ssh:connect", "ssh:shell", "sftp:read", "sftp:write", "git:read", "fs:read", "perf"}
)

// The head's log lines once the worker joined for calls and registered
// for relayed connections.
var (
	workerJoinedRE     = regexp.MustCompile(`call: peer attached.*peer=worker`)
	workerRegisteredRE = regexp.MustCompile(`relay: worker registered`)
)

func quoteList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// keyField returns "TYPE BASE64" of an OpenSSH public key line.
func keyField(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return strings.TrimSpace(line)
	}
	return f[0] + " " + f[1]
}

// wrap returns the command line running name with args in ns.
func wrap(ns *netns.NS, name string, args ...string) (string, []string) {
	p := ns.Prefix()
	return p[0], append(append(p[1:len(p):len(p)], name), args...)
}

// clientTimeout bounds one client command.
const clientTimeout = time.Minute

// Client runs name with args in the client's home (site 1) to completion,
// with stdin, within timeout (clientTimeout if 0), and returns its
// combined output; a failure carries the output's end.
func (r *Rig) Client(ctx context.Context, timeout time.Duration, stdin, name string, args ...string) ([]byte, error) {
	if timeout == 0 {
		timeout = clientTimeout
	}
	name, args = wrap(r.Top.Sites[1].Home, name, args...)
	return harness.RunChild(ctx, timeout, stdin, name, args...)
}

// Alknet runs the alknet binary with the client's data dir and args in
// the client's home.
func (r *Rig) Alknet(ctx context.Context, timeout time.Duration, stdin string, args ...string) ([]byte, error) {
	return r.Client(ctx, timeout, stdin, r.Bin, append(args[:len(args):len(args)], "--data-dir", r.ClientDir)...)
}

// Via are the flags that send a client command through the head,
// relayed: through cone NATs a punch would open a direct path instead
// (ViaPunch; TestReachPunch).
func (r *Rig) Via() []string { return append(r.ViaPunch(), "--relay-only") }

// ViaPunch is the flag that sends a client command through the head,
// which punches a direct path where the NATs let it.
func (r *Rig) ViaPunch() []string { return []string{"--via", r.HeadAddr} }

// PipeCommand is the `alknet pipe` command line that opens alpn on the
// worker through the head, relayed: OpenSSH's ProxyCommand.
func (r *Rig) PipeCommand(alpn string) string {
	return strings.Join(append([]string{r.Bin, "pipe", "--data-dir", r.ClientDir, "--alpn", alpn, r.WorkerID}, r.Via()...), " ")
}

// SSHOptions are the stock ssh (and sftp) options that reach the worker
// through the head: the client key only, the worker's host key checked,
// no prompts, `alknet pipe --via` as the ProxyCommand.
func (r *Rig) SSHOptions() []string {
	return []string{
		"-F", "none", "-i", r.keyFile,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + r.knownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
		"-o", "ProxyCommand=" + r.PipeCommand("alknet/ssh"),
	}
}

// SSHDest is ssh's destination for the worker.
func (r *Rig) SSHDest() string { return r.sshUser + "@" + workerHostAlias }

// Close stops the nodes and removes the rig's directory; the topology
// stays.
func (r *Rig) Close() error {
	var errs []error
	for _, c := range []*harness.Child{r.Worker, r.Head} {
		if c != nil {
			errs = append(errs, c.Stop())
		}
	}
	errs = append(errs, os.RemoveAll(r.Dir))
	return errors.Join(errs...)
}

// runIn runs name with args to completion within clientTimeout and returns
// its combined output.
func runIn(ctx context.Context, name string, args ...string) ([]byte, error) {
	return harness.RunChild(ctx, clientTimeout, "", name, args...)
}

func itoa(i int) string { return strconv.Itoa(i) }

// MakeRepo makes a bare git repository of one commit at
// WorkerDir/git/<name>.git, served by the worker over alknet/git (and, by
// its absolute path, to git over ssh), and returns the commit's hash.
func (r *Rig) MakeRepo(ctx context.Context, name string) (string, error) {
	bare := filepath.Join(r.WorkerDir, "git", name+".git")
	work := filepath.Join(r.Dir, "repo-"+strings.ReplaceAll(name, "/", "-"))
	git := func(dir string, args ...string) (string, error) {
		out, err := harness.RunChild(ctx, clientTimeout, "", "git", append([]string{"-C", dir,
			"-c", "user.name=alknet", "-c", "user.email=alknet@example.invalid", "-c", "init.defaultBranch=main"}, args...)...)
		return strings.TrimSpace(string(out)), err
	}
	if err := os.MkdirAll(filepath.Dir(bare), 0o700); err != nil {
		return "", err
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return "", err
	}
	if _, err := git(filepath.Dir(bare), "init", "-q", "--bare", bare); err != nil {
		return "", err
	}
	if _, err := git(work, "init", "-q"); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(work, "README"), []byte("behind a NAT\n"), 0o600); err != nil {
		return "", err
	}
	for _, args := range [][]string{{"add", "README"}, {"commit", "-q", "-m", "first"}, {"push", "-q", bare, "HEAD:refs/heads/main"}} {
		if _, err := git(work, args...); err != nil {
			return "", err
		}
	}
	return git(work, "rev-parse", "HEAD")
}

// RepoPath is the absolute path of the worker's repository name, for git
// over ssh.
func (r *Rig) RepoPath(name string) string { return filepath.Join(r.WorkerDir, "git", name+".git") }

// AddToWorker adds the file path to the worker's fs store (through its
// control socket) and returns its CID.
func (r *Rig) AddToWorker(ctx context.Context, path string) (string, error) {
	out, err := harness.RunChild(ctx, clientTimeout, "", r.Bin, "fs", "add", "-q", "--data-dir", r.WorkerDir, path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
