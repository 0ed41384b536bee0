package bench

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
)

// The real-path report (issue 17 §6): the same work done by alknet and by
// its plain-TCP counterpart across an emulated link, servers in namespace
// B and stock clients in A. Each group of transfers is measured once per
// link; its transfers are the group's numbers.

// Groups of the report's transfers, as -wan-transfers names them.
const (
	// ReportSFTP is a stock sftp get of one file: from the node's
	// alknet/sftp through `alknet pipe` (QUIC, and TCP+TLS), and from
	// OpenSSH's sftp-server through sshd (aes128-gcm).
	ReportSFTP = "sftp"
	// ReportForward is iperf3 through a local forward, download (-R) then
	// upload: `alknet forward -L` (QUIC, and TCP+TLS), `ssh -L` to sshd
	// (aes128-gcm), and direct TCP to the iperf3 server.
	ReportForward = "forward"
	// ReportGit is `git clone --bare` of a 5 000-commit repository over
	// alknet (git-remote-alknet), git daemon and OpenSSH.
	ReportGit = "git"
	// ReportFS is `alknet fs get --node` of one file against the download
	// half of `alknet perf --streams 1` over QUIC and over TCP+TLS.
	ReportFS = "fs"
	// ReportCall is the median latency of echo calls from 16 concurrent
	// callers on one connection: alknet call over QUIC and TCP+TLS, and
	// grpc-go unary over TLS.
	ReportCall = "call"
)

// ReportGroups returns every group, in the order they run.
func ReportGroups() []string {
	return []string{ReportSFTP, ReportForward, ReportGit, ReportFS, ReportCall}
}

// LossyGitRepo is the report's repository on paths with random loss: 5 000
// commits like DefaultGitRepo, with smaller edits (a ~5 MB pack instead of
// 73 MB), so that a clone at QUIC's ~3 Mbit/s there ends in seconds.
var LossyGitRepo = GitRepoSpec{Commits: 5000, Files: 100, FileLines: 256, EditLines: 16, Seed: 1}

// ReportConfig configures [ReportTransfers]. Zero fields take the
// defaults.
type ReportConfig struct {
	// Binary is the alknet executable; required.
	Binary string
	// Groups to run; nil means all ([ReportGroups]).
	Groups []string
	// Bytes is the size of the sftp and fs files on a path without random
	// loss; default 256 MiB. LossyBytes is the size on one with random
	// loss (where QUIC's NewReno moves ~3 Mbit/s); default 8 MiB.
	Bytes, LossyBytes int64
	// ForwardTime is the length of each iperf3 run; default 5s.
	ForwardTime time.Duration
	// GitRepo and LossyGitRepo are the cloned repositories on paths
	// without and with random loss; defaults DefaultGitRepo and
	// LossyGitRepo. GitCache keeps them; default GitRepoCache().
	GitRepo, LossyGitRepo GitRepoSpec
	GitCache              string
	// GitBackend is the node's [git] backend; default "exec" (git's own
	// pack-objects: the go-git backend is CPU-bound at ~12x git daemon's
	// clone time on the loopback already, docs/benchmarks.md).
	GitBackend string
	// CallDuration is the length of each call run; default 3s.
	// CallCallers is the number of concurrent callers; default 16.
	CallDuration time.Duration
	CallCallers  int
	// Timeout bounds each transfer; default 5 minutes.
	Timeout time.Duration
}

func (c ReportConfig) withDefaults() ReportConfig {
	if c.Groups == nil {
		c.Groups = ReportGroups()
	}
	if c.Bytes == 0 {
		c.Bytes = 256 << 20
	}
	if c.LossyBytes == 0 {
		c.LossyBytes = 8 << 20
	}
	if c.ForwardTime == 0 {
		c.ForwardTime = 5 * time.Second
	}
	if c.GitRepo == (GitRepoSpec{}) {
		c.GitRepo = DefaultGitRepo
	}
	if c.LossyGitRepo == (GitRepoSpec{}) {
		c.LossyGitRepo = LossyGitRepo
	}
	if c.GitBackend == "" {
		c.GitBackend = "exec"
	}
	if c.GitCache == "" {
		c.GitCache = GitRepoCache()
	}
	if c.CallDuration == 0 {
		c.CallDuration = 3 * time.Second
	}
	if c.CallCallers == 0 {
		c.CallCallers = 16
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	return c
}

// lossy says whether p has random or bursty loss, where the report moves
// the smaller sizes.
func lossy(p LinkProfile) bool { return p.MeanLoss() > 0 }

func (c ReportConfig) bytes(p LinkProfile) int64 {
	if lossy(p) {
		return c.LossyBytes
	}
	return c.Bytes
}

func (c ReportConfig) repo(p LinkProfile) GitRepoSpec {
	if lossy(p) {
		return c.LossyGitRepo
	}
	return c.GitRepo
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
	group := func(measure func(context.Context, *Link) (map[string]float64, error), work func(LinkProfile) string, latency bool, names ...string) {
		m := oncePerLinkKeepErr(measure)
		for _, n := range names {
			ts = append(ts, WANTransfer{Name: n, Latency: latency, Work: work, Run: func(ctx context.Context, l *Link) (float64, error) {
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
	size := func(p LinkProfile) string {
		s := fmt.Sprintf("%d MiB", cfg.bytes(p)>>20)
		if lossy(p) {
			s += " (lossy size)"
		}
		return s
	}
	if want(ReportSFTP) || want(ReportForward) || want(ReportGit) {
		rig := oncePerLinkKeepErr(func(ctx context.Context, l *Link) (map[string]float64, error) {
			return cfg.measureRig(ctx, l, want)
		})
		if want(ReportSFTP) {
			group(rig, size, false, sftpAlknet, sftpAlknetTCP, sftpOpenSSH)
		}
		if want(ReportForward) {
			secs := func(LinkProfile) string { return fmt.Sprintf("iperf3 %v", cfg.ForwardTime) }
			group(rig, secs, false, fwdDownAlknet, fwdDownAlknetTCP, fwdDownOpenSSH, fwdDownDirect,
				fwdUpAlknet, fwdUpAlknetTCP, fwdUpOpenSSH, fwdUpDirect)
		}
		if want(ReportGit) {
			commits := func(p LinkProfile) string {
				s := fmt.Sprintf("%d commits, pack bytes/s", cfg.repo(p).Commits)
				if lossy(p) {
					s += " (lossy repo)"
				}
				return s
			}
			group(rig, commits, false, gitAlknet, gitDaemon, gitOpenSSH)
		}
	}
	if want(ReportFS) {
		group(cfg.measureFS, size, false, fsGet, fsPerfQUIC, fsPerfTCP)
	}
	if want(ReportCall) {
		callers := func(LinkProfile) string { return fmt.Sprintf("%d callers, %v", cfg.CallCallers, cfg.CallDuration) }
		group(cfg.measureCall, callers, true, callQUIC, callTCP, callGRPC)
	}
	return ts, nil
}

// oncePerLinkKeepErr is oncePerLink that keeps a failure too: the
// transfers of a group that failed fail with it instead of measuring again.
func oncePerLinkKeepErr[R any](measure func(context.Context, *Link) (R, error)) func(context.Context, *Link) (R, error) {
	type outcome struct {
		r   R
		err error
	}
	m := oncePerLink(func(ctx context.Context, l *Link) (outcome, error) {
		r, err := measure(ctx, l)
		return outcome{r, err}, nil
	})
	return func(ctx context.Context, l *Link) (R, error) {
		o, _ := m(ctx, l)
		return o.r, o.err
	}
}

// measureRig starts the SSH rig across l (node, sshd and iperf3 in B) and
// runs the wanted groups of sftp, forward and git on it.
func (c ReportConfig) measureRig(ctx context.Context, l *Link, want func(string) bool) (res map[string]float64, err error) {
	place := linkPlace(l)
	place.nodeConfig = fmt.Sprintf("\n[git]\nbackend = %q\n", c.GitBackend)
	r, err := startSSHRigAt(ctx, c.Binary, place)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	res = map[string]float64{}
	if want(ReportSFTP) {
		if err := r.ensureSFTPFile(c.bytes(l.Profile())); err != nil {
			return res, err
		}
		for _, v := range []sshVariant{
			r.sftpVariant(sftpAlknet, SFTPGet, "/", []string{"-D", r.pipeCommand("alknet/sftp")}),
			r.sftpVariant(sftpAlknetTCP, SFTPGet, "/", []string{"-D", r.pipeCommand("alknet/sftp", "--network", "tcp")}),
			r.sftpVariant(sftpOpenSSH, SFTPGet, r.srv+"/", r.toSSHD(AES128GCM)),
		} {
			mbs, err := runVariant(ctx, v)
			if err != nil {
				return res, fmt.Errorf("%s: %w", v.name, err)
			}
			res[v.name] = mbs * 1e6
		}
		if err := os.Remove(filepath.Join(r.srv, sftpFile)); err != nil {
			return res, err
		}
	}
	if want(ReportForward) {
		if err := c.measureForward(ctx, r, res); err != nil {
			return res, err
		}
	}
	if want(ReportGit) {
		if err := c.measureGit(ctx, l, r, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// runVariant starts v, measures it once and stops it.
func runVariant(ctx context.Context, v sshVariant) (float64, error) {
	m, stop, err := v.start(ctx)
	if err != nil {
		return 0, err
	}
	val, err := m(ctx)
	return val, errors.Join(err, stop())
}

// measureForward runs iperf3 through each forward, download (-R) and then
// upload on the same forward, and directly.
func (c ReportConfig) measureForward(ctx context.Context, r *sshRig, res map[string]float64) error {
	if err := r.startIperf(ctx); err != nil {
		return err
	}
	length := []string{"-t", strconv.Itoa(max(1, int(c.ForwardTime/time.Second)))}
	both := func(down, up string) func(addr string) measureFunc {
		return func(addr string) measureFunc {
			return func(ctx context.Context) (float64, error) {
				d, err := r.iperf3(ctx, addr, append(slices.Clone(length), "-R"))
				if err != nil {
					return 0, fmt.Errorf("download: %w", err)
				}
				u, err := r.iperf3(ctx, addr, length)
				if err != nil {
					return 0, fmt.Errorf("upload: %w", err)
				}
				res[down], res[up] = d*1e6/8, u*1e6/8
				return d, nil
			}
		}
	}
	target := ":" + r.serverPort(r.iperfPort)
	for _, v := range []sshVariant{
		{fwdDownDirect, func(context.Context) (measureFunc, func() error, error) {
			return both(fwdDownDirect, fwdUpDirect)(r.serverPort(r.iperfPort)), noStop, nil
		}},
		r.alknetListener(fwdDownAlknet, forwardListening, both(fwdDownAlknet, fwdUpAlknet), "forward", "-L", "127.0.0.1:0"+target),
		r.alknetListener(fwdDownAlknetTCP, forwardListening, both(fwdDownAlknetTCP, fwdUpAlknetTCP), "forward", "--network", "tcp", "-L", "127.0.0.1:0"+target),
		r.sshListener(fwdDownOpenSSH, "-L", target, both(fwdDownOpenSSH, fwdUpOpenSSH), r.toSSHD(AES128GCM)),
	} {
		if _, err := runVariant(ctx, v); err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
	}
	return r.stopIperf()
}

// measureGit clones the profile's repository (generated once into the
// cache) from git daemon and sshd (serving the cached repository in B) and
// from the rig's node (a copy in its data dir), each into a fresh bare
// repository in A, and checks main. The rate is the repository's pack
// bytes over the clone's run time.
func (c ReportConfig) measureGit(ctx context.Context, l *Link, r *sshRig, res map[string]float64) error {
	info, err := GenerateGitRepo(ctx, c.GitCache, c.repo(l.Profile()))
	if err != nil {
		return err
	}
	head, err := gitOutput(ctx, info.Dir, nil, "rev-parse", "main")
	if err != nil {
		return err
	}
	if err := copyTree(info.Dir, filepath.Join(r.nodeDir, "git", benchRepo+".git")); err != nil {
		return fmt.Errorf("git: copy repository: %w", err)
	}
	client, err := newGitClient(ctx, r.bin, r.dir)
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	execPath, err := gitOutput(ctx, "", nil, "--exec-path")
	if err != nil {
		return err
	}
	name, args := r.place.serverCmd(filepath.Join(execPath, "git-daemon"), "--verbose", "--reuseaddr",
		"--base-path="+filepath.Dir(info.Dir), "--export-all", "--listen="+r.place.addr(), "--port="+strconv.Itoa(port), filepath.Dir(info.Dir))
	daemon, _, err := startChild(ctx, regexpReady, name, args...)
	if err != nil {
		return fmt.Errorf("git daemon: %w", err)
	}
	defer daemon.stop()
	sshCmd := strings.Join(append([]string{"ssh"}, r.sshOptions()...), " ")
	for _, v := range []struct {
		name, url string
		env       []string
	}{
		{gitDaemon, fmt.Sprintf("git://%s/%s", r.serverPort(port), filepath.Base(info.Dir)), nil},
		{gitOpenSSH, fmt.Sprintf("ssh://%s@%s%s", r.user, r.serverPort(r.sshdPort), info.Dir), []string{"GIT_SSH_COMMAND=" + sshCmd}},
		{gitAlknet, fmt.Sprintf("alknet://%s/%s.git", r.nodeAddr, benchRepo), client.Env()},
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
func (c ReportConfig) clone(ctx context.Context, r *sshRig, url string, env []string, head string) (time.Duration, error) {
	dst := filepath.Join(r.dir, "clone.git")
	defer os.RemoveAll(dst)
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	name, args := r.place.clientCmd("git", "clone", "-q", "--bare", url, dst)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = gitEnv(env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	syscall.Sync()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("git clone: %w: %s", errors.Join(err, ctx.Err()), lastLines(string(out), tailLines))
	}
	got, err := gitOutput(ctx, dst, nil, "rev-parse", "main")
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
func (c ReportConfig) measureFS(ctx context.Context, l *Link) (map[string]float64, error) {
	size := c.bytes(l.Profile())
	work, err := os.MkdirTemp("", "alknet-bench-wanfs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	r := &fsRig{cfg: FSConfig{Binary: c.Binary, Bytes: size}, work: work, input: filepath.Join(work, "input"),
		client: filepath.Join(work, "client"), place: linkPlace(l)}
	if err := r.setUp(ctx); err != nil {
		return nil, err
	}
	defer r.node.stop()
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	res := map[string]float64{}
	out := filepath.Join(work, "got")
	name, args := r.place.clientCmd(c.Binary, "fs", "get", "--data-dir", r.client, "--node", r.addr, r.root, "-o", out)
	wall, _, _, err := timeCommand(ctx, name, args...)
	if err != nil {
		return res, fmt.Errorf("fs get: %w", err)
	}
	want, err := fileSum(r.input)
	if err != nil {
		return res, err
	}
	if got, err := fileSum(out); err != nil || got != want {
		return res, fmt.Errorf("fs get: the copy differs from the original (%v)", err)
	}
	res[fsGet] = float64(size) / wall.Seconds()
	for _, v := range []struct{ name, network string }{{fsPerfQUIC, "quic"}, {fsPerfTCP, "tcp"}} {
		name, args := r.place.clientCmd(c.Binary, "perf", "--data-dir", r.client, "--network", v.network, "--streams", "1",
			"--bytes", strconv.FormatInt(size, 10), r.addr)
		_, _, stdout, err := timeCommand(ctx, name, args...)
		if err != nil {
			return res, fmt.Errorf("perf --network %s: %w", v.network, err)
		}
		m := perfDownload.FindSubmatch(stdout)
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
// (in this process) and measures the median latency of cfg.CallCallers
// concurrent callers, in seconds.
func (c ReportConfig) measureCall(ctx context.Context, l *Link) (map[string]float64, error) {
	res := map[string]float64{}
	for _, v := range []struct {
		name string
		sys  CallSystem
	}{{callQUIC, AlknetQUIC}, {callTCP, AlknetTCP}, {callGRPC, GRPC}} {
		t, err := startCallTargetAt(ctx, v.sys, linkCallPlace(l))
		if err != nil {
			return res, err
		}
		r, err := t.Run(ctx, CallOptions{Duration: c.CallDuration, Concurrency: c.CallCallers})
		if err := errors.Join(err, t.Close()); err != nil {
			return res, fmt.Errorf("%s: %w", v.name, err)
		}
		res[v.name] = Percentile(r.Latencies, 50).Seconds()
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
		for _, t := range r.Transfers {
			if t.Err == nil {
				rates[t.Name] = t.BytesPerSec
			}
		}
		for _, g := range reportGoals {
			a, ok1 := rates[g.num]
			b, ok2 := rates[g.den]
			if ok1 && ok2 && a > 0 && b > 0 {
				rows = append(rows, row{r.Profile.Name, g.name, g.num, g.den, g.op, a, b, g.target})
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
		writeGoal(&b, r.name, r.profile, r.a/r.b, r.op, r.target)
		lines = append(lines, b.String())
	}
	return lines
}
