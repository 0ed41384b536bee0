package wan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/callbench"
	"github.com/alkdev/alknet/alknet/bench/internal/fsbench"
	"github.com/alkdev/alknet/alknet/bench/internal/gitbench"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/sshbench"
)

// The real-path report (issue 17 §6): the same work done by alknet and by
// its plain-TCP counterpart across an emulated link, servers in namespace
// B and stock clients in A. Each group of transfers is measured once per
// link; its transfers are the group's numbers.

// Groups of the report's transfers, as -wan-transfers names them.
const (
	// reportSFTP is a stock sftp get of one file: from the node's
	// alknet/sftp through `alknet pipe` (QUIC, and TCP+TLS), and from
	// OpenSSH's sftp-server through sshd (aes128-gcm).
	reportSFTP = "sftp"
	// reportForward is iperf3 through a local forward, download (-R) then
	// upload: `alknet forward -L` (QUIC, and TCP+TLS), `ssh -L` to sshd
	// (aes128-gcm), and direct TCP to the iperf3 server.
	reportForward = "forward"
	// reportGit is `git clone --bare` of a 5 000-commit repository over
	// alknet (git-remote-alknet), git daemon and OpenSSH.
	reportGit = "git"
	// reportFS is `alknet fs get --node` of one file against the download
	// half of `alknet perf --streams 1` over QUIC and over TCP+TLS.
	reportFS = "fs"
	// reportCall is the median latency of echo calls from 16 concurrent
	// callers on one connection: alknet call over QUIC and TCP+TLS, and
	// grpc-go unary over TLS.
	reportCall = "call"
)

// ReportGroups returns every group, in the order they run.
func ReportGroups() []string {
	return []string{reportSFTP, reportForward, reportGit, reportFS, reportCall}
}

// lossyGitRepo is the report's repository on paths with random loss: 5 000
// commits like DefaultGitRepo, with smaller edits (a ~5 MB pack instead of
// 73 MB), so that a clone at QUIC's ~3 Mbit/s there ends in seconds.
var lossyGitRepo = gitbench.GitRepoSpec{Commits: 5000, Files: 100, FileLines: 256, EditLines: 16, Seed: 1}

// ReportConfig configures [ReportTransfers]. Zero fields take the
// defaults.
type ReportConfig struct {
	// Binary is the alknet executable; required.
	Binary string
	// Groups to run; nil means all ([ReportGroups]).
	Groups []string
	// Bytes is the size of the sftp and fs files on a path without random
	// loss; default 256 MiB. LossyBytes is the size on one with random
	// loss, where every transfer moves a fraction of the rate; default 32
	// MiB, so that connecting stays a small part of each transfer's time.
	Bytes, LossyBytes int64
	// ForwardTime is the length of each iperf3 run; default 5s.
	ForwardTime time.Duration
	// gitRepo and lossyGitRepo are the cloned repositories on paths
	// without and with random loss; defaults DefaultGitRepo and
	// lossyGitRepo. GitCache keeps them; default GitRepoCache().
	gitRepo, lossyGitRepo gitbench.GitRepoSpec
	GitCache              string
	// gitBackend is the node's [git] backend; default "exec" (git's own
	// pack-objects: the go-git backend is CPU-bound at ~12x git daemon's
	// clone time on the loopback already, docs/benchmarks.md).
	gitBackend string
	// callDuration is the length of each call run; default 3s.
	// callCallers is the number of concurrent callers; default 16.
	callDuration time.Duration
	callCallers  int
	// timeout bounds each transfer; default 5 minutes.
	timeout time.Duration
}

func (c ReportConfig) withDefaults() ReportConfig {
	if c.Groups == nil {
		c.Groups = ReportGroups()
	}
	if c.Bytes == 0 {
		c.Bytes = 256 << 20
	}
	if c.LossyBytes == 0 {
		c.LossyBytes = 32 << 20
	}
	if c.ForwardTime == 0 {
		c.ForwardTime = 5 * time.Second
	}
	if c.gitRepo == (gitbench.GitRepoSpec{}) {
		c.gitRepo = gitbench.DefaultGitRepo
	}
	if c.lossyGitRepo == (gitbench.GitRepoSpec{}) {
		c.lossyGitRepo = lossyGitRepo
	}
	if c.gitBackend == "" {
		c.gitBackend = "exec"
	}
	if c.GitCache == "" {
		c.GitCache = gitbench.GitRepoCache()
	}
	if c.callDuration == 0 {
		c.callDuration = 3 * time.Second
	}
	if c.callCallers == 0 {
		c.callCallers = 16
	}
	if c.timeout == 0 {
		c.timeout = 5 * time.Minute
	}
	return c
}

// lossy says whether p has random or bursty loss, where the report moves
// the smaller sizes.
func lossy(p netem.LinkProfile) bool { return p.MeanLoss() > 0 }

func (c ReportConfig) bytes(p netem.LinkProfile) int64 {
	if lossy(p) {
		return c.LossyBytes
	}
	return c.Bytes
}

func (c ReportConfig) repo(p netem.LinkProfile) gitbench.GitRepoSpec {
	if lossy(p) {
		return c.lossyGitRepo
	}
	return c.gitRepo
}

// Names of the report's transfers: "<work>/<variant>".
const (
	sftpAlknet    = "sftp-get/alknet"
	sftpAlknetTCP = "sftp-get/alknet-tcp"
	sftpOpenSSH   = "sftp-get/openssh"

	fwdDownAlknet    = "forward-down/alknet"
	fwdDownAlknetTCP = "forward-down/alknet-tcp"
	fwdDownOpenSSH   = "forward-down/openssh"
	fwdDownDirect    = "forward-down/direct-tcp"
	fwdUpAlknet      = "forward-up/alknet"
	fwdUpAlknetTCP   = "forward-up/alknet-tcp"
	fwdUpOpenSSH     = "forward-up/openssh"
	fwdUpDirect      = "forward-up/direct-tcp"

	gitAlknet  = "git-clone/alknet"
	gitDaemon  = "git-clone/git-daemon"
	gitOpenSSH = "git-clone/openssh"

	fsGet      = "fs-get/alknet"
	fsPerfQUIC = "fs-get/perf-down-quic"
	fsPerfTCP  = "fs-get/perf-down-tcp"

	callQUIC = "call-p50/alknet"
	callTCP  = "call-p50/alknet-tcp"
	callGRPC = "call-p50/grpc"
)

// reportGoals are issue 17's goals on the report's transfers: each alknet
// transfer at least 0.8x the same work over plain TCP (OpenSSH, git
// daemon, TCP+TLS perf), fs get at least 0.8x raw perf, and a call's
// median latency at most 1.25x grpc-go's (the same 0.8, inverted).
var reportGoals = []struct {
	name, num, den, op string
	target             float64
}{
	{"sftp-get", sftpAlknet, sftpOpenSSH, ">=", 0.8},
	{"forward-down", fwdDownAlknet, fwdDownOpenSSH, ">=", 0.8},
	{"forward-up", fwdUpAlknet, fwdUpOpenSSH, ">=", 0.8},
	{"git-clone-vs-daemon", gitAlknet, gitDaemon, ">=", 0.8},
	{"git-clone-vs-openssh", gitAlknet, gitOpenSSH, ">=", 0.8},
	{"fs-get-vs-tcp-perf", fsGet, fsPerfTCP, ">=", 0.8},
	{"fs-get-vs-perf", fsGet, fsPerfQUIC, ">=", 0.8},
	{"call-p50-vs-grpc", callQUIC, callGRPC, "<=", 1.25},
}

// ReportTransfers returns the report's transfers of cfg.Groups, in the
// order of [ReportGroups].
func ReportTransfers(cfg ReportConfig) ([]WANTransfer, error) {
	cfg = cfg.withDefaults()
	if cfg.Binary == "" {
		return nil, errors.New("bench: report: no alknet binary")
	}
	for _, g := range cfg.Groups {
		if !slices.Contains(ReportGroups(), g) {
			return nil, fmt.Errorf("bench: report: unknown group %q (want %s)", g, strings.Join(ReportGroups(), ", "))
		}
	}
	want := func(g string) bool { return slices.Contains(cfg.Groups, g) }
	var ts []WANTransfer
	group := func(measure func(context.Context, *netem.Link) (map[string]float64, error), work func(netem.LinkProfile) string, latency bool, names ...string) {
		m := oncePerLinkKeepErr(measure)
		for _, n := range names {
			ts = append(ts, WANTransfer{name: n, latency: latency, work: work, run: func(ctx context.Context, l *netem.Link) (float64, error) {
				res, err := m(ctx, l)
				if err != nil {
					return 0, err
				}
				v, ok := res[n]
				if !ok {
					return 0, fmt.Errorf("bench: report: %s not measured", n)
				}
				return v, nil
			}})
		}
	}
	size := func(p netem.LinkProfile) string {
		s := fmt.Sprintf("%d MiB", cfg.bytes(p)>>20)
		if lossy(p) {
			s += " (lossy size)"
		}
		return s
	}
	if want(reportSFTP) || want(reportForward) || want(reportGit) {
		rig := oncePerLinkKeepErr(func(ctx context.Context, l *netem.Link) (map[string]float64, error) {
			return cfg.measureRig(ctx, l, want)
		})
		if want(reportSFTP) {
			group(rig, size, false, sftpAlknet, sftpAlknetTCP, sftpOpenSSH)
		}
		if want(reportForward) {
			secs := func(netem.LinkProfile) string { return fmt.Sprintf("iperf3 %v", cfg.ForwardTime) }
			group(rig, secs, false, fwdDownAlknet, fwdDownAlknetTCP, fwdDownOpenSSH, fwdDownDirect,
				fwdUpAlknet, fwdUpAlknetTCP, fwdUpOpenSSH, fwdUpDirect)
		}
		if want(reportGit) {
			commits := func(p netem.LinkProfile) string {
				s := fmt.Sprintf("%d commits, pack bytes/s", cfg.repo(p).Commits)
				if lossy(p) {
					s += " (lossy repo)"
				}
				return s
			}
			group(rig, commits, false, gitAlknet, gitDaemon, gitOpenSSH)
		}
	}
	if want(reportFS) {
		group(cfg.measureFS, size, false, fsGet, fsPerfQUIC, fsPerfTCP)
	}
	if want(reportCall) {
		callers := func(netem.LinkProfile) string {
			return fmt.Sprintf("%d callers, %v", cfg.callCallers, cfg.callDuration)
		}
		group(cfg.measureCall, callers, true, callQUIC, callTCP, callGRPC)
	}
	return ts, nil
}

// oncePerLinkKeepErr is oncePerLink that keeps a failure too: the
// transfers of a group that failed fail with it instead of measuring again.
func oncePerLinkKeepErr[R any](measure func(context.Context, *netem.Link) (R, error)) func(context.Context, *netem.Link) (R, error) {
	type outcome struct {
		r   R
		err error
	}
	m := oncePerLink(func(ctx context.Context, l *netem.Link) (outcome, error) {
		r, err := measure(ctx, l)
		return outcome{r, err}, nil
	})
	return func(ctx context.Context, l *netem.Link) (R, error) {
		o, _ := m(ctx, l)
		return o.r, o.err
	}
}

// measureRig starts the SSH rig across l (node, sshd and iperf3 in B) and
// runs the wanted groups of sftp, forward and git on it.
func (c ReportConfig) measureRig(ctx context.Context, l *netem.Link, want func(string) bool) (res map[string]float64, err error) {
	place := netem.LinkPlace(l)
	place.NodeConfig = fmt.Sprintf("\n[git]\nbackend = %q\n", c.gitBackend)
	r, err := sshbench.StartSSHRigAt(ctx, c.Binary, place)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	res = map[string]float64{}
	if want(reportSFTP) {
		if err := r.EnsureSFTPFile(c.bytes(l.Profile())); err != nil {
			return res, err
		}
		for _, v := range []sshbench.SSHVariant{
			r.SFTPVariant(sftpAlknet, sshbench.SFTPGet, "/", []string{"-D", r.PipeCommand("alknet/sftp")}),
			r.SFTPVariant(sftpAlknetTCP, sshbench.SFTPGet, "/", []string{"-D", r.PipeCommand("alknet/sftp", "--network", "tcp")}),
			r.SFTPVariant(sftpOpenSSH, sshbench.SFTPGet, r.Srv+"/", r.ToSSHD(sshbench.AES128GCM)),
		} {
			mbs, err := runVariant(ctx, v)
			if err != nil {
				return res, fmt.Errorf("%s: %w", v.Name, err)
			}
			res[v.Name] = mbs * 1e6
		}
		if err := os.Remove(filepath.Join(r.Srv, sshbench.SFTPFile)); err != nil {
			return res, err
		}
	}
	if want(reportForward) {
		if err := c.measureForward(ctx, r, res); err != nil {
			return res, err
		}
	}
	if want(reportGit) {
		if err := c.measureGit(ctx, l, r, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// runVariant starts v, measures it once and stops it.
func runVariant(ctx context.Context, v sshbench.SSHVariant) (float64, error) {
	m, stop, err := v.Start(ctx)
	if err != nil {
		return 0, err
	}
	val, err := m(ctx)
	return val, errors.Join(err, stop())
}

// measureForward runs iperf3 through each forward, download (-R) and then
// upload on the same forward, and directly.
func (c ReportConfig) measureForward(ctx context.Context, r *sshbench.SSHRig, res map[string]float64) error {
	if err := r.StartIperf(ctx); err != nil {
		return err
	}
	length := []string{"-t", strconv.Itoa(max(1, int(c.ForwardTime/time.Second)))}
	both := func(down, up string) func(addr string) sshbench.MeasureFunc {
		return func(addr string) sshbench.MeasureFunc {
			return func(ctx context.Context) (float64, error) {
				d, err := r.Iperf3(ctx, addr, append(slices.Clone(length), "-R"))
				if err != nil {
					return 0, fmt.Errorf("download: %w", err)
				}
				u, err := r.Iperf3(ctx, addr, length)
				if err != nil {
					return 0, fmt.Errorf("upload: %w", err)
				}
				res[down], res[up] = d*1e6/8, u*1e6/8
				return d, nil
			}
		}
	}
	target := ":" + r.ServerPort(r.IperfPort)
	for _, v := range []sshbench.SSHVariant{
		{Name: fwdDownDirect, Start: func(context.Context) (sshbench.MeasureFunc, func() error, error) {
			return both(fwdDownDirect, fwdUpDirect)(r.ServerPort(r.IperfPort)), sshbench.NoStop, nil
		}},
		r.AlknetListener(fwdDownAlknet, sshbench.ForwardListening, both(fwdDownAlknet, fwdUpAlknet), "forward", "-L", "127.0.0.1:0"+target),
		r.AlknetListener(fwdDownAlknetTCP, sshbench.ForwardListening, both(fwdDownAlknetTCP, fwdUpAlknetTCP), "forward", "--network", "tcp", "-L", "127.0.0.1:0"+target),
		r.SSHListener(fwdDownOpenSSH, "-L", target, both(fwdDownOpenSSH, fwdUpOpenSSH), r.ToSSHD(sshbench.AES128GCM)),
	} {
		if _, err := runVariant(ctx, v); err != nil {
			return fmt.Errorf("%s: %w", v.Name, err)
		}
	}
	return r.StopIperf()
}

// measureGit clones the profile's repository (generated once into the
// cache) from git daemon and sshd (serving the cached repository in B) and
// from the rig's node (a copy in its data dir), each into a fresh bare
// repository in A, and checks main. The rate is the repository's pack
// bytes over the clone's run time.
func (c ReportConfig) measureGit(ctx context.Context, l *netem.Link, r *sshbench.SSHRig, res map[string]float64) error {
	info, err := gitbench.GenerateGitRepo(ctx, c.GitCache, c.repo(l.Profile()))
	if err != nil {
		return err
	}
	head, err := gitbench.GitOutput(ctx, info.Dir, nil, "rev-parse", "main")
	if err != nil {
		return err
	}
	if err := gitbench.CopyTree(info.Dir, filepath.Join(r.NodeDir, "git", gitbench.BenchRepo+".git")); err != nil {
		return fmt.Errorf("git: copy repository: %w", err)
	}
	client, err := gitbench.NewGitClient(ctx, r.Bin, r.Dir)
	if err != nil {
		return err
	}
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	execPath, err := gitbench.GitOutput(ctx, "", nil, "--exec-path")
	if err != nil {
		return err
	}
	name, args := r.Place.ServerCmd(filepath.Join(execPath, "git-daemon"), "--verbose", "--reuseaddr",
		"--base-path="+filepath.Dir(info.Dir), "--export-all", "--listen="+r.Place.Addr(), "--port="+strconv.Itoa(port), filepath.Dir(info.Dir))
	daemon, _, err := harness.StartChild(ctx, regexpReady, name, args...)
	if err != nil {
		return fmt.Errorf("git daemon: %w", err)
	}
	defer daemon.Stop()
	sshCmd := strings.Join(append([]string{"ssh"}, r.SSHOptions()...), " ")
	for _, v := range []struct {
		name, url string
		env       []string
	}{
		{gitDaemon, fmt.Sprintf("git://%s/%s", r.ServerPort(port), filepath.Base(info.Dir)), nil},
		{gitOpenSSH, fmt.Sprintf("ssh://%s@%s%s", r.User, r.ServerPort(r.SshdPort), info.Dir), []string{"GIT_SSH_COMMAND=" + sshCmd}},
		{gitAlknet, fmt.Sprintf("alknet://%s/%s.git", r.NodeAddr, gitbench.BenchRepo), client.Env()},
	} {
		d, err := c.clone(ctx, r, v.url, v.env, head)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		res[v.name] = float64(info.PackBytes) / d.Seconds()
	}
	return nil
}

// regexpReady is git daemon's ready line.
var regexpReady = regexp.MustCompile(`Ready to rumble`)

// clone runs `git clone --bare` of url in A into a fresh directory and
// checks that main is head; it returns the clone's run time.
func (c ReportConfig) clone(ctx context.Context, r *sshbench.SSHRig, url string, env []string, head string) (time.Duration, error) {
	dst := filepath.Join(r.Dir, "clone.git")
	defer os.RemoveAll(dst)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	name, args := r.Place.ClientCmd("git", "clone", "-q", "--bare", url, dst)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = gitbench.GitEnv(env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	syscall.Sync()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("git clone: %w: %s", errors.Join(err, ctx.Err()), harness.LastLines(string(out), harness.TailLines))
	}
	got, err := gitbench.GitOutput(ctx, dst, nil, "rev-parse", "main")
	if err != nil {
		return 0, err
	}
	if got != head {
		return 0, fmt.Errorf("git clone: main is %s, want %s", got, head)
	}
	return d, nil
}

// measureFS starts a node in B holding a file of the profile's size,
// gets it with `alknet fs get --node` from A (into an empty client store;
// the copy is checked), and runs `alknet perf --streams 1` of the same
// size over QUIC and TCP+TLS, whose download halves are the raw streams.
func (c ReportConfig) measureFS(ctx context.Context, l *netem.Link) (map[string]float64, error) {
	size := c.bytes(l.Profile())
	work, err := os.MkdirTemp("", "alknet-bench-wanfs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	r := &fsbench.FSRig{Cfg: fsbench.FSConfig{Binary: c.Binary, Bytes: size}, Work: work, Input: filepath.Join(work, "input"),
		Client: filepath.Join(work, "client"), Place: netem.LinkPlace(l)}
	if err := r.SetUp(ctx); err != nil {
		return nil, err
	}
	defer r.Node.Stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	res := map[string]float64{}
	out := filepath.Join(work, "got")
	name, args := r.Place.ClientCmd(c.Binary, "fs", "get", "--data-dir", r.Client, "--node", r.Addr, r.Root, "-o", out)
	wall, _, _, err := harness.TimeCommand(ctx, name, args...)
	if err != nil {
		return res, fmt.Errorf("fs get: %w", err)
	}
	want, err := sshbench.FileSum(r.Input)
	if err != nil {
		return res, err
	}
	if got, err := sshbench.FileSum(out); err != nil || got != want {
		return res, fmt.Errorf("fs get: the copy differs from the original (%v)", err)
	}
	res[fsGet] = float64(size) / wall.Seconds()
	for _, v := range []struct{ name, network string }{{fsPerfQUIC, "quic"}, {fsPerfTCP, "tcp"}} {
		name, args := r.Place.ClientCmd(c.Binary, "perf", "--data-dir", r.Client, "--network", v.network, "--streams", "1",
			"--bytes", strconv.FormatInt(size, 10), r.Addr)
		_, _, stdout, err := harness.TimeCommand(ctx, name, args...)
		if err != nil {
			return res, fmt.Errorf("perf --network %s: %w", v.network, err)
		}
		m := fsbench.PerfDownload.FindSubmatch(stdout)
		if m == nil {
			return res, fmt.Errorf("perf: no download line in %q", stdout)
		}
		d, err := time.ParseDuration(string(m[1]))
		if err != nil || d <= 0 {
			return res, fmt.Errorf("perf: download time %q: %v", m[1], err)
		}
		res[v.name] = float64(size) / d.Seconds()
	}
	return res, nil
}

// measureCall runs each call system's server in B and its client in A
// (in this process) and measures the median latency of cfg.callCallers
// concurrent callers, in seconds.
func (c ReportConfig) measureCall(ctx context.Context, l *netem.Link) (map[string]float64, error) {
	res := map[string]float64{}
	for _, v := range []struct {
		name string
		sys  callbench.CallSystem
	}{{callQUIC, callbench.AlknetQUIC}, {callTCP, callbench.AlknetTCP}, {callGRPC, callbench.GRPC}} {
		t, err := callbench.StartCallTargetAt(ctx, v.sys, callbench.LinkCallPlace(l))
		if err != nil {
			return res, err
		}
		r, err := t.Run(ctx, callbench.CallOptions{Duration: c.callDuration, Concurrency: c.callCallers})
		if err := errors.Join(err, t.Close()); err != nil {
			return res, fmt.Errorf("%s: %w", v.name, err)
		}
		res[v.name] = harness.Percentile(r.Latencies, 50).Seconds()
	}
	return res, nil
}

// writeReportGoals prints the report's ratios as a table and, per profile
// that ran both sides of one, its goal lines.
func writeReportGoals(w io.Writer, results []WANResult) (lines []string) {
	type row struct {
		profile, name, num, den, op string
		a, b, target                float64
	}
	var rows []row
	for _, r := range results {
		rates := map[string]float64{}
		for _, t := range r.transfers {
			if t.err == nil {
				rates[t.name] = t.bytesPerSec
			}
		}
		for _, g := range reportGoals {
			a, ok1 := rates[g.num]
			b, ok2 := rates[g.den]
			if ok1 && ok2 && a > 0 && b > 0 {
				rows = append(rows, row{r.profile.Name, g.name, g.num, g.den, g.op, a, b, g.target})
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprintf(w, "Real-path goals (issue 17: each alknet transfer >= 0.8x the same work over plain TCP; a call's p50 <= 1.25x grpc-go's):\n\n")
	fmt.Fprintf(w, "| profile | goal | alknet | baseline | ratio | target |\n|---|---|---|---|---:|---|\n")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.3f | %s%g |\n", r.profile, r.name, r.num, r.den, r.a/r.b, r.op, r.target)
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		var b strings.Builder
		harness.WriteGoal(&b, r.name, r.profile, r.a/r.b, r.op, r.target)
		lines = append(lines, b.String())
	}
	return lines
}
