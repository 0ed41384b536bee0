package gitbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// gitStartTimeout bounds a server's start and stop.
const gitStartTimeout = 30 * time.Second

// daemonTarget is `git daemon`, started afresh for every measured command
// under `/usr/bin/time`, so that the maximum resident set size it reports
// covers that command alone. (The daemon is not started from this process
// directly: a child exec'd by a large Go process inherits the parent's
// peak in its ru_maxrss.)
type daemonTarget struct {
	work, base string
	execPath   string // git --exec-path
	port       int
	time       *exec.Cmd // /usr/bin/time running the daemon; nil when stopped
	daemon     int       // the daemon's process ID
	exited     chan error
}

// timeTool is GNU time, which reports a command's maximum resident set
// size (and its children's) with -f %M.
const timeTool = "/usr/bin/time"

func newDaemonTarget(repo, dir string) (*daemonTarget, error) {
	if _, err := os.Stat(timeTool); err != nil {
		return nil, fmt.Errorf("bench: git daemon: %s is needed (Debian package time): %w", timeTool, err)
	}
	execPath, err := GitOutput(context.Background(), "", nil, "--exec-path")
	if err != nil {
		return nil, err
	}
	d := &daemonTarget{work: dir, base: filepath.Join(dir, "base"), execPath: execPath}
	if err := CopyTree(repo, d.served()); err != nil {
		return nil, fmt.Errorf("bench: git daemon: copy repository: %w", err)
	}
	return d, nil
}

func (d *daemonTarget) name() GitServer { return gitDaemon }

func (d *daemonTarget) dir() string { return d.work }

func (d *daemonTarget) served() string { return filepath.Join(d.base, BenchRepo+".git") }

func (d *daemonTarget) clientEnv() []string { return nil }

func (d *daemonTarget) clientRepo(n string) string { return filepath.Join(d.work, n) }

func (d *daemonTarget) pid() int { return d.daemon }

func (d *daemonTarget) timeFile() string { return filepath.Join(d.work, "time.out") }

func (d *daemonTarget) url() string {
	return fmt.Sprintf("git://127.0.0.1:%d/%s.git", d.port, BenchRepo)
}

func (d *daemonTarget) prepareClients(ctx context.Context, repo string) error {
	if err := d.before(ctx); err != nil {
		return err
	}
	err := clientRepos(ctx, repo, d.work, d.url(), nil)
	_, aerr := d.after(ctx)
	return errors.Join(err, aerr)
}

// before starts the daemon on a free port and waits for it to listen.
func (d *daemonTarget) before(ctx context.Context) error {
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	d.port = port
	// git-daemon itself, not the git wrapper, which would run it as a
	// child of its own.
	cmd := exec.Command(timeTool, "-f", "maxrss %M", "-o", d.timeFile(),
		filepath.Join(d.execPath, "git-daemon"), "--verbose", "--reuseaddr", "--base-path="+d.base, "--export-all",
		"--enable=receive-pack", "--listen=127.0.0.1", "--port="+strconv.Itoa(port), d.base)
	cmd.Env = GitEnv(nil)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start git daemon: %w", err)
	}
	d.time, d.daemon, d.exited = cmd, 0, make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if !sent && strings.Contains(sc.Text(), "Ready to rumble") {
				close(ready)
				sent = true
			}
		}
		d.exited <- cmd.Wait()
	}()
	select {
	case <-ready:
		if c := childPIDs(cmd.Process.Pid); len(c) == 1 {
			d.daemon = c[0]
			return nil
		}
		err = errors.New("git daemon: no single child of time")
	case <-time.After(gitStartTimeout):
		err = errors.New("git daemon did not start")
	case <-ctx.Done():
		err = ctx.Err()
	}
	return errors.Join(err, d.stop())
}

// after waits for the daemon's children to be reaped, stops it and returns
// the maximum resident set size time reports for it and its children.
func (d *daemonTarget) after(ctx context.Context) (int64, error) {
	deadline := time.Now().Add(gitStartTimeout)
	for len(childPIDs(d.daemon)) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	if err := d.stop(); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(d.timeFile())
	if err != nil {
		return 0, fmt.Errorf("git daemon: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "maxrss "); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("git daemon: %s: %q: %w", timeTool, line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("git daemon: no maxrss in %s output %q", timeTool, b)
}

// stop sends SIGTERM to the daemon (time then exits with it) and waits;
// after gitStartTimeout it kills both.
func (d *daemonTarget) stop() error {
	if d.time == nil {
		return nil
	}
	cmd := d.time
	d.time = nil
	pids := []int{d.daemon}
	if d.daemon == 0 { // not identified: whatever time started
		pids = childPIDs(cmd.Process.Pid)
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	if len(pids) == 0 {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-d.exited:
		// time exits with the daemon's signal; that is the expected end.
		return nil
	case <-time.After(gitStartTimeout):
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("git daemon: no exit %v after SIGTERM, killed", gitStartTimeout)
	}
}

// close stops a daemon left running by a failed measurement.
func (d *daemonTarget) close() error { return d.stop() }

// GitClient is a stock git client of alknet: a client data directory
// (its key is the identity the node sees) and the git-remote-alknet link
// to the alknet binary, both under one directory.
type GitClient struct {
	// bin is the alknet binary; Dir holds the client's files.
	bin, dir string
	// nodeID is the client's key as `alknet id` prints it.
	nodeID string
}

// NewGitClient makes a client key under dir and links the git helper to
// bin there.
func NewGitClient(ctx context.Context, bin, dir string) (*GitClient, error) {
	if bin == "" {
		return nil, errors.New("bench: git: no alknet binary")
	}
	c := &GitClient{bin: bin, dir: dir}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "vault")); os.IsNotExist(err) {
		if _, err := c.alknet(ctx, "init", "--data-dir", c.dataDir()); err != nil {
			return nil, err
		}
	}
	out, err := c.alknet(ctx, "id", "--data-dir", c.dataDir())
	if err != nil {
		return nil, err
	}
	id, _, _ := strings.Cut(out, "\n")
	c.nodeID = strings.TrimSpace(id)
	if _, err := c.alknet(ctx, "git", "install-helper", c.binDir()); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *GitClient) dataDir() string { return filepath.Join(c.dir, "client") }

func (c *GitClient) binDir() string { return filepath.Join(c.dir, "bin") }

// Env is what git needs in its environment to reach alknet as this client.
func (c *GitClient) Env() []string {
	return []string{"PATH=" + c.binDir() + string(os.PathListSeparator) + os.Getenv("PATH"),
		"ALKNET_DATA_DIR=" + c.dataDir(), "ALKNET_PASSPHRASE="}
}

// alknet runs the binary with an empty passphrase and returns its standard
// output.
func (c *GitClient) alknet(ctx context.Context, args ...string) (string, error) {
	if err := os.MkdirAll(c.binDir(), 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("bench: alknet %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(b), nil
}

// alknetTarget is `alknet serve`, running through the whole comparison.
type alknetTarget struct {
	work, node string
	client     *GitClient
	port       int
	cmd        *exec.Cmd
	exited     chan error
	out        *harness.LogTail
}

// alknetPeer is the identity of the benchmark's git client on the node.
const alknetPeer = "bench"

// newAlknetTarget makes a node data directory holding a copy of
// cfg.Repo and a client whose key the node grants git:read and git:write
// (plus cfg.AlknetConfig in its config), and starts the node.
func newAlknetTarget(ctx context.Context, cfg GitConfig, dir string) (*alknetTarget, error) {
	client, err := NewGitClient(ctx, cfg.Binary, dir)
	if err != nil {
		return nil, err
	}
	a := &alknetTarget{work: dir, client: client}
	if err := CopyTree(cfg.Repo, a.served()); err != nil {
		return nil, fmt.Errorf("bench: alknet: copy repository: %w", err)
	}
	toml := fmt.Sprintf("[[peers]]\nid = %q\nkeys = [%q]\nscopes = [\"git:read\", \"git:write\"]\n\n%s\n", alknetPeer, client.nodeID, cfg.AlknetConfig)
	if err := os.WriteFile(filepath.Join(a.dataDir(), "alknet.toml"), []byte(toml), 0o600); err != nil {
		return nil, fmt.Errorf("bench: alknet: %w", err)
	}
	return a, a.start(ctx)
}

func (a *alknetTarget) name() GitServer { return gitAlknet }

func (a *alknetTarget) dir() string { return a.work }

func (a *alknetTarget) dataDir() string { return filepath.Join(a.work, "data") }

func (a *alknetTarget) served() string {
	return filepath.Join(a.dataDir(), "git", BenchRepo+".git")
}

func (a *alknetTarget) clientRepo(n string) string { return filepath.Join(a.work, n) }

func (a *alknetTarget) clientEnv() []string { return a.client.Env() }

func (a *alknetTarget) pid() int { return a.cmd.Process.Pid }

func (a *alknetTarget) url() string {
	return fmt.Sprintf("alknet://%s@127.0.0.1:%d/%s.git", a.node, a.port, BenchRepo)
}

func (a *alknetTarget) prepareClients(ctx context.Context, repo string) error {
	return clientRepos(ctx, repo, a.work, a.url(), a.clientEnv())
}

// start runs `alknet serve` and waits for its listening line.
func (a *alknetTarget) start(ctx context.Context) error {
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	a.port = port
	a.cmd = exec.Command(a.client.bin, "serve", "--data-dir", a.dataDir(), "--listen", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	a.cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE=")
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	a.cmd.Stdout, a.cmd.Stderr = pw, pw
	err = a.cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return fmt.Errorf("bench: start %s: %w", a.client.bin, err)
	}
	a.out = &harness.LogTail{Ready: make(chan string, 1)}
	a.exited = make(chan error, 1)
	go func() {
		// The pipe's writer ends with the process, and the scan with it.
		a.out.Scan(pr)
		pr.Close()
		a.exited <- a.cmd.Wait()
	}()
	select {
	case line := <-a.out.Ready:
		m := harness.NodeAttr.FindStringSubmatch(line)
		if m == nil {
			return errors.Join(fmt.Errorf("bench: alknet: no node= in %q", line), a.close())
		}
		a.node = m[1]
		return nil
	case <-time.After(gitStartTimeout):
	case <-ctx.Done():
	}
	return errors.Join(fmt.Errorf("bench: alknet serve did not start; output ends:\n%s", a.out), a.close(), ctx.Err())
}

// before resets the node's VmHWM.
func (a *alknetTarget) before(context.Context) error { return harness.ResetHWM(a.pid()) }

// after reads the node's VmHWM.
func (a *alknetTarget) after(context.Context) (int64, error) {
	_, hwm, err := harness.ProcMemory(a.pid())
	return hwm, err
}

// close stops the node; an exit status other than 0 is an error.
func (a *alknetTarget) close() error {
	if a.cmd == nil {
		return nil
	}
	err := stopProcess(a.cmd, a.exited, gitStartTimeout)
	a.cmd = nil
	if err != nil {
		return fmt.Errorf("alknet serve: %w; output ends:\n%s", err, a.out)
	}
	return nil
}
