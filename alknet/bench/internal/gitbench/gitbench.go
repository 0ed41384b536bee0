package gitbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// GitServer names a git server of the comparison.
type GitServer string

// The git servers [CompareGit] measures.
const (
	// gitDaemon is `git daemon` (git:// over TCP), which runs
	// `git upload-pack` or `git receive-pack` per connection.
	gitDaemon GitServer = "git-daemon"
	// gitAlknet is `alknet serve` (alknet/git over QUIC), reached through
	// the git-remote-alknet helper.
	gitAlknet GitServer = "alknet"
)

// GitOp is one git operation of the comparison.
type GitOp string

// The git operations [CompareGit] measures.
const (
	// gitClone is `git clone --bare` of the whole repository.
	gitClone GitOp = "clone"
	// gitShallow is `git clone --bare --depth 1`.
	gitShallow GitOp = "clone --depth 1"
	// gitFetch is `git fetch` of main into a clone that has it.
	gitFetch GitOp = "fetch (no-op)"
	// gitPush is `git push` of a new branch of [GitConfig.pushCommits]
	// commits on top of main.
	gitPush GitOp = "push"
)

// allGitOps returns every operation, in the order a round runs them.
func allGitOps() []GitOp { return []GitOp{gitClone, gitShallow, gitFetch, gitPush} }

// gitOpNames are the operations' short names, for flags and
// sub-benchmarks.
var gitOpNames = map[GitOp]string{gitClone: "clone", gitShallow: "shallow", gitFetch: "fetch", gitPush: "push"}

// ParseGitOp returns the operation of a short name: clone, shallow, fetch
// or push.
func ParseGitOp(name string) (GitOp, error) {
	for _, op := range allGitOps() {
		if gitOpNames[op] == name {
			return op, nil
		}
	}
	return "", fmt.Errorf("bench: unknown git operation %q (want clone, shallow, fetch, push)", name)
}

// GitConfig is an interleaved comparison of git servers.
type GitConfig struct {
	// Binary is the alknet executable; required for GitAlknet.
	Binary string
	// Repo is the bare repository served (a copy of it for each server);
	// its main branch is what clients clone and fetch.
	Repo string
	// servers are compared; the first round runs them in this order, each
	// later one starts with the next. Nil means git daemon, then alknet.
	servers []GitServer
	// Ops run in this order each round; nil means AllGitOps().
	Ops []GitOp
	// Runs is how many rounds run; zero means 3.
	Runs int
	// AlknetConfig is added to the node's alknet.toml, after the peer
	// that grants the client access: "[git]\npack_window = -1", say.
	AlknetConfig string
	// pushCommits is the length of each pushed branch; zero means 100.
	pushCommits int
	// timeout bounds each git command; zero means 15 minutes.
	timeout time.Duration
	// Progress, if set, is called after each measurement, from the calling
	// goroutine.
	Progress func(GitSample)
}

// GitSample is one measured git command.
type GitSample struct {
	// Run counts rounds from 1.
	Run    int
	Server GitServer
	Op     GitOp
	// Wall runs from starting the git command to its exit, client work
	// (for alknet: the helper process, its key and its QUIC dial)
	// included.
	Wall time.Duration
	// Peak is the server's exact peak resident memory during the command,
	// in bytes. alknet: VmHWM of the node, reset before the command. git
	// daemon, started afresh for each command: the largest ru_maxrss of
	// the daemon and its children, which is what `/usr/bin/time -v`
	// reports as its maximum resident set size.
	Peak int64
	// TreePeak is the largest sum of VmRSS over the server process and
	// all its descendants, sampled every 5 ms during the command, in
	// bytes. For git daemon it counts upload-pack and pack-objects
	// together.
	TreePeak int64
}

// GitReport holds every measurement of a comparison.
type GitReport struct {
	// config is the comparison's configuration, defaults filled in.
	config GitConfig
	// commits and packBytes describe the served repository.
	commits   int
	packBytes int64
	// samples are in the order they ran.
	samples []GitSample
}

// wall summarizes the wall-clock times of server's op, in seconds.
func (r *GitReport) wall(server GitServer, op GitOp) harness.Stats {
	return r.summarize(server, op, func(s GitSample) float64 { return s.Wall.Seconds() })
}

// peak summarizes the exact peak memory of server during op, in bytes.
func (r *GitReport) peak(server GitServer, op GitOp) harness.Stats {
	return r.summarize(server, op, func(s GitSample) float64 { return float64(s.Peak) })
}

// treePeak summarizes the sampled peak memory of server's process tree
// during op, in bytes.
func (r *GitReport) treePeak(server GitServer, op GitOp) harness.Stats {
	return r.summarize(server, op, func(s GitSample) float64 { return float64(s.TreePeak) })
}

// pairedWallRatio summarizes, over the rounds, the ratio of a's to b's
// wall-clock time for op within the same round.
func (r *GitReport) pairedWallRatio(a, b GitServer, op GitOp) harness.Stats {
	return harness.PairedRatio(r.samples, a, b, func(s GitSample) (int, GitServer, float64, bool) {
		return s.Run, s.Server, s.Wall.Seconds(), s.Op == op
	})
}

func (r *GitReport) summarize(server GitServer, op GitOp, f func(GitSample) float64) harness.Stats {
	var v []float64
	for _, s := range r.samples {
		if s.Server == server && s.Op == op {
			v = append(v, f(s))
		}
	}
	return harness.Summarize(v)
}

// gitOpTimeout is the default of [GitConfig.Timeout].
const gitOpTimeout = 15 * time.Minute

// BenchRepo is the name both servers serve the repository under.
const BenchRepo = "bench"

// CompareGit serves a copy of cfg.Repo with each server and runs cfg.Runs
// rounds; each round runs every operation once per server, the servers'
// order rotating from round to round. Each clone is checked against the
// repository's main and each push against the server's ref. It stops at the
// first failure, returning what it measured so far. Everything lives in a
// temporary directory that is removed at the end.
func CompareGit(ctx context.Context, cfg GitConfig) (*GitReport, error) {
	if cfg.servers == nil {
		cfg.servers = []GitServer{gitDaemon, gitAlknet}
	}
	if cfg.Ops == nil {
		cfg.Ops = allGitOps()
	}
	if cfg.Runs == 0 {
		cfg.Runs = 3
	}
	if cfg.pushCommits == 0 {
		cfg.pushCommits = 100
	}
	if cfg.timeout == 0 {
		cfg.timeout = gitOpTimeout
	}
	rep := &GitReport{config: cfg}
	var err error
	if rep.commits, err = countCommits(ctx, cfg.Repo, "main"); err != nil {
		return rep, err
	}
	if rep.packBytes, err = packBytes(cfg.Repo); err != nil {
		return rep, err
	}
	head, err := GitOutput(ctx, cfg.Repo, nil, "rev-parse", "main")
	if err != nil {
		return rep, err
	}
	work, err := os.MkdirTemp("", "alknet-bench-git-")
	if err != nil {
		return rep, fmt.Errorf("bench: git: %w", err)
	}
	defer os.RemoveAll(work)

	var servers []gitTarget
	defer func() {
		for _, s := range servers {
			_ = s.close()
		}
	}()
	for _, name := range cfg.servers {
		s, err := newGitTarget(ctx, name, cfg, filepath.Join(work, string(name)))
		if err != nil {
			return rep, err
		}
		servers = append(servers, s)
	}
	for _, s := range servers {
		if err := s.prepareClients(ctx, cfg.Repo); err != nil {
			return rep, err
		}
	}
	for run := 1; run <= cfg.Runs; run++ {
		for _, op := range cfg.Ops {
			for i := range servers {
				s := servers[(i+run-1)%len(servers)]
				sample, err := measureGitOp(ctx, cfg, s, op, run, head)
				if err != nil {
					return rep, fmt.Errorf("bench: git: %s, %s, round %d: %w", s.name(), op, run, err)
				}
				rep.samples = append(rep.samples, sample)
				if cfg.Progress != nil {
					cfg.Progress(sample)
				}
			}
		}
	}
	for _, s := range servers {
		if err := s.close(); err != nil {
			return rep, fmt.Errorf("bench: git: %s: %w", s.name(), err)
		}
	}
	servers = nil
	return rep, nil
}

// measureGitOp runs op once against s and checks its result.
func measureGitOp(ctx context.Context, cfg GitConfig, s gitTarget, op GitOp, run int, head string) (GitSample, error) {
	sample := GitSample{Run: run, Server: s.name(), Op: op}
	if err := s.before(ctx); err != nil {
		return sample, err
	}
	sample, err := runGitOp(ctx, cfg, s, sample, head)
	peak, aerr := s.after(ctx)
	sample.Peak = peak
	return sample, errors.Join(err, aerr)
}

// runGitOp runs sample's operation against the ready server s.
func runGitOp(ctx context.Context, cfg GitConfig, s gitTarget, sample GitSample, head string) (GitSample, error) {
	var args []string
	var dir, dest, pushRef string
	switch sample.Op {
	case gitClone, gitShallow:
		dest = filepath.Join(s.dir(), "clone")
		args = []string{"clone", "-q", "--bare", s.url(), dest}
		if sample.Op == gitShallow {
			args = []string{"clone", "-q", "--bare", "--depth", "1", s.url(), dest}
		}
		defer os.RemoveAll(dest)
	case gitFetch:
		dir = s.clientRepo("fetch")
		args = []string{"fetch", "-q", s.url(), "+refs/heads/main:refs/remotes/origin/main"}
	case gitPush:
		dir = s.clientRepo("push")
		pushRef = fmt.Sprintf("refs/heads/push-%d", sample.Run)
		if err := addPushCommits(ctx, dir, pushRef, cfg.pushCommits, uint64(sample.Run)); err != nil {
			return sample, err
		}
		args = []string{"push", "-q", s.url(), pushRef + ":" + pushRef}
	default:
		return sample, fmt.Errorf("unknown operation %q", sample.Op)
	}
	sampler := startTreeSampler(s.pid())
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = GitEnv(s.clientEnv())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	sample.Wall = time.Since(start)
	sample.TreePeak = sampler.stop()
	if err != nil {
		return sample, fmt.Errorf("git %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	switch sample.Op {
	case gitClone, gitShallow:
		err = checkRef(ctx, dest, "HEAD", head)
	case gitPush:
		var want string
		if want, err = GitOutput(ctx, dir, nil, "rev-parse", pushRef); err == nil {
			err = checkRef(ctx, s.served(), pushRef, want)
		}
	}
	return sample, err
}

// checkRef checks that ref names want in the repository dir.
func checkRef(ctx context.Context, dir, ref, want string) error {
	got, err := GitOutput(ctx, dir, nil, "rev-parse", ref)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s is %s in %s, want %s", ref, got, dir, want)
	}
	return nil
}

// addPushCommits adds n commits on top of main to the repository dir as
// ref, each adding one file of 32 lines of text from seed. The same
// arguments give the same commits.
func addPushCommits(ctx context.Context, dir, ref string, n int, seed uint64) error {
	t := newTextGen(seed)
	var sb strings.Builder
	fmt.Fprintf(&sb, "reset %s\nfrom refs/heads/main^0\n", ref)
	for c := range n {
		msg := fmt.Sprintf("push %d/%d\n", seed, c)
		fmt.Fprintf(&sb, "commit %s\n", ref)
		writeSignature(&sb, "author", int64(1_000_000+c))
		writeSignature(&sb, "committer", int64(1_000_000+c))
		fmt.Fprintf(&sb, "data %d\n%s", len(msg), msg)
		var file strings.Builder
		for range 32 {
			file.WriteString(t.line())
		}
		fmt.Fprintf(&sb, "M 100644 inline push/%d/%03d.txt\ndata %d\n%s\n", seed, c, file.Len(), file.String())
	}
	sb.WriteString("done\n")
	return fastImport(ctx, dir, func(w io.Writer) error {
		_, err := io.WriteString(w, sb.String())
		return err
	})
}

// gitTarget is one server under test with its client repositories.
type gitTarget interface {
	name() GitServer
	// dir is the target's working directory.
	dir() string
	// served is the path of the repository the server serves.
	served() string
	// url is the clients' URL of the served repository.
	url() string
	// clientEnv is what clients need in their environment.
	clientEnv() []string
	// clientRepo is the path of a client repository ("fetch" or "push").
	clientRepo(name string) string
	// prepareClients makes the client repositories from repo.
	prepareClients(ctx context.Context, repo string) error
	// before readies the server for a measured command; pid is then the
	// server's process (0: none to sample).
	before(ctx context.Context) error
	pid() int
	// after returns the exact peak memory of the server during the
	// command.
	after(ctx context.Context) (int64, error)
	close() error
}

// newGitTarget sets up server name in dir with a copy of cfg.Repo.
func newGitTarget(ctx context.Context, name GitServer, cfg GitConfig, dir string) (gitTarget, error) {
	switch name {
	case gitDaemon:
		return newDaemonTarget(cfg.Repo, dir)
	case gitAlknet:
		return newAlknetTarget(ctx, cfg, dir)
	}
	return nil, fmt.Errorf("bench: git: unknown server %q", name)
}

// clientRepos makes dir/fetch and dir/push from repo: local clones without
// a checkout, fetch made current against url with the refspec the
// benchmark's fetch uses.
func clientRepos(ctx context.Context, repo, dir, url string, env []string) error {
	for _, name := range []string{"fetch", "push"} {
		if err := gitRun(ctx, "", nil, "clone", "-q", "--no-checkout", "--local", repo, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return gitRun(ctx, filepath.Join(dir, "fetch"), env, "fetch", "-q", url, "+refs/heads/main:refs/remotes/origin/main")
}

// CopyTree copies the directory src to dst (files and directories only).
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
}

// treeSampler records the largest summed VmRSS of a process tree.
type treeSampler struct {
	done chan struct{}
	peak chan int64
}

// treeSampleEvery is how often a treeSampler reads /proc.
const treeSampleEvery = 5 * time.Millisecond

// startTreeSampler samples pid's process tree until stop; pid 0 samples
// nothing.
func startTreeSampler(pid int) *treeSampler {
	s := &treeSampler{done: make(chan struct{}), peak: make(chan int64, 1)}
	if pid == 0 {
		s.peak <- 0
		return s
	}
	go func() {
		var peak int64
		t := time.NewTicker(treeSampleEvery)
		defer t.Stop()
		for {
			peak = max(peak, treeRSS(pid))
			select {
			case <-s.done:
				s.peak <- max(peak, treeRSS(pid))
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// stop ends the sampling and returns the peak in bytes.
func (s *treeSampler) stop() int64 {
	close(s.done)
	return <-s.peak
}

// treeRSS sums VmRSS over pid and its descendants; processes that end
// meanwhile count as 0.
func treeRSS(pid int) int64 {
	rss, _, _ := harness.ProcMemory(pid)
	for _, c := range childPIDs(pid) {
		rss += treeRSS(c)
	}
	return rss
}

// childPIDs lists the children of pid, started from any of its threads
// (each thread has its own list: Go starts processes from whichever
// thread runs the goroutine).
func childPIDs(pid int) []int {
	lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var pids []int
	for _, l := range lists {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				pids = append(pids, n)
			}
		}
	}
	return pids
}

// stopProcess sends SIGTERM to cmd's process and waits up to timeout for
// it to exit, then kills it.
func stopProcess(cmd *exec.Cmd, exited <-chan error, timeout time.Duration) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s: no exit %v after SIGTERM, killed", filepath.Base(cmd.Path), timeout)
	}
}
