package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alkdev/alknet/core"
)

// ServeOptions configures [MeasureServe].
type ServeOptions struct {
	// Binary is the alknet executable; required.
	Binary string
	// Passphrase is handed to the binary as ALKNET_PASSPHRASE; empty is
	// allowed.
	Passphrase string
	// Idle is how long the node idles before its memory is read; zero
	// means 2s.
	Idle time.Duration
	// ReadyTimeout bounds the wait for the node to become ready, and then
	// for it to exit after SIGTERM; zero means 30s.
	ReadyTimeout time.Duration
}

// StartResult is one start of `alknet serve`.
type StartResult struct {
	// ToLog runs from the process start to its `msg=listening` log line.
	ToLog time.Duration
	// ToDial runs from the process start to the end of the first QUIC
	// handshake with it (dialed once the log line named the node).
	ToDial time.Duration
	// RSS and HWM are VmRSS and VmHWM from /proc/PID/status after the idle
	// wait, in bytes.
	RSS, HWM int64
	// ToExit runs from SIGTERM to the process's exit.
	ToExit time.Duration
	// ExitCode is the exit status after SIGTERM; -1 if killed by a signal.
	ExitCode int
}

// ServeResult is [MeasureServe]'s answer.
type ServeResult struct {
	// First started on an empty data directory, so it includes creating
	// the vault (Argon2id key derivation); Second reopened it.
	First, Second StartResult
}

// listeningMarker is in the log line core.Endpoint writes once it serves.
const listeningMarker = "msg=listening"

var (
	nodeAttr  = regexp.MustCompile(`\bnode=([a-z0-9]+)`)
	alpnsAttr = regexp.MustCompile(`\balpns="?\[([^\]]*)\]`)
)

// MeasureServe starts `BINARY serve --data-dir DIR --listen 127.0.0.1:PORT`
// twice on a fresh temporary data directory (removed afterwards), each time
// measuring the time to ready, then idling, reading the memory, sending
// SIGTERM and checking for exit status 0. An exit status other than 0 is an
// error, returned with the measurements.
func MeasureServe(ctx context.Context, opts ServeOptions) (ServeResult, error) {
	var res ServeResult
	if opts.Binary == "" {
		return res, errors.New("bench: serve: no binary")
	}
	if opts.Idle == 0 {
		opts.Idle = 2 * time.Second
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp("", "alknet-bench-serve-")
	if err != nil {
		return res, fmt.Errorf("bench: serve: %w", err)
	}
	defer os.RemoveAll(dir)
	data := filepath.Join(dir, "data")
	if res.First, err = measureStart(ctx, opts, data); err != nil {
		return res, fmt.Errorf("bench: serve, first start: %w", err)
	}
	if res.Second, err = measureStart(ctx, opts, data); err != nil {
		return res, fmt.Errorf("bench: serve, second start: %w", err)
	}
	return res, nil
}

// measureStart runs the binary once on dataDir.
func measureStart(ctx context.Context, opts ServeOptions, dataDir string) (StartResult, error) {
	res := StartResult{ExitCode: -1}
	port, err := freePort()
	if err != nil {
		return res, err
	}
	hostport := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	pr, pw, err := os.Pipe()
	if err != nil {
		return res, err
	}
	cmd := exec.Command(opts.Binary, "serve", "--data-dir", dataDir, "--listen", hostport)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE="+opts.Passphrase)
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return res, fmt.Errorf("start %s: %w", opts.Binary, err)
	}
	pw.Close()
	out := &logTail{ready: make(chan string, 1)}
	var wg sync.WaitGroup
	wg.Go(func() { out.scan(pr) })
	exited := make(chan error, 1)
	go func() {
		// Wait reaps the child; the pipe's writer ends with it, so the
		// scanner ends too.
		exited <- cmd.Wait()
	}()
	stop := func() error {
		term := time.Now()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		var err error
		select {
		case err = <-exited:
			res.ToExit = time.Since(term)
		case <-time.After(opts.ReadyTimeout):
			_ = cmd.Process.Kill()
			err = <-exited
			err = fmt.Errorf("no exit %v after SIGTERM, killed: %w", opts.ReadyTimeout, err)
		}
		wg.Wait()
		pr.Close()
		if cmd.ProcessState != nil {
			res.ExitCode = cmd.ProcessState.ExitCode()
		}
		if err != nil {
			return fmt.Errorf("%w; output ends:\n%s", err, out.String())
		}
		return nil
	}

	readyCtx, cancel := context.WithTimeout(ctx, opts.ReadyTimeout)
	defer cancel()
	var line string
	select {
	case line = <-out.ready:
		res.ToLog = time.Since(start)
	case err := <-exited:
		exited <- err
		err = errors.Join(fmt.Errorf("exited before %q", listeningMarker), err)
		return res, errors.Join(err, stop())
	case <-readyCtx.Done():
		return res, errors.Join(fmt.Errorf("no %q line: %w", listeningMarker, readyCtx.Err()), stop())
	}
	if err := dialReady(readyCtx, line, hostport); err != nil {
		return res, errors.Join(err, stop())
	}
	res.ToDial = time.Since(start)

	select {
	case <-time.After(opts.Idle):
	case <-ctx.Done():
		return res, errors.Join(ctx.Err(), stop())
	}
	if res.RSS, res.HWM, err = procMemory(cmd.Process.Pid); err != nil {
		return res, errors.Join(err, stop())
	}
	return res, stop()
}

// dialReady makes QUIC handshakes with the node named in the listening log
// line, for the first ALPN it lists, until one succeeds.
func dialReady(ctx context.Context, line, hostport string) error {
	m := nodeAttr.FindStringSubmatch(line)
	if m == nil {
		return fmt.Errorf("no node= in the listening line %q", line)
	}
	alpn := "alknet/perf"
	if a := alpnsAttr.FindStringSubmatch(line); a != nil && strings.TrimSpace(a[1]) != "" {
		alpn = strings.Fields(a[1])[0]
	}
	d := &core.Dialer{Network: core.NetworkQUIC, QUICTimeout: time.Second}
	for {
		c, err := d.Dial(ctx, m[1]+"@"+hostport, alpn)
		if err == nil {
			return c.CloseWithError(core.CodeNoError, "")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("quic dial %s for %s: %w", hostport, alpn, err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// logTail scans a child's output: it hands the first listening line to
// ready and keeps the last lines for error messages.
type logTail struct {
	ready chan string

	mu    sync.Mutex
	lines []string
}

// tailLines is how many output lines a logTail keeps.
const tailLines = 20

func (t *logTail) scan(r *os.File) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		t.mu.Lock()
		t.lines = append(t.lines, line)
		if len(t.lines) > tailLines {
			t.lines = t.lines[1:]
		}
		t.mu.Unlock()
		if !sent && strings.Contains(line, listeningMarker) {
			t.ready <- line
			sent = true
		}
	}
}

// String returns the kept lines.
func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// procMemory reads VmRSS and VmHWM of pid, in bytes.
func procMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		f := strings.Fields(v) // "12345 kB"
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: unexpected %q", pid, k, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return rss, hwm, sc.Err()
}

// freePort returns a port free on both UDP and TCP on 127.0.0.1 at the time
// of the call.
func freePort() (int, error) {
	for range 20 {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, err
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		u.Close()
		if err == nil {
			t.Close()
			return port, nil
		}
	}
	return 0, errors.New("no port free on both udp and tcp")
}

// FindRepoRoot returns the nearest directory at or above dir holding
// go.work: the alknet repository root.
func FindRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bench: no go.work above the working directory; pass the alknet binary")
		}
		dir = parent
	}
}

// BuildAlknet builds the alknet command of the repository at repoRoot into
// out, in its module directory, so that it builds on its own go.mod with
// GOWORK=off as well as in the workspace. The error carries the
// compiler's output.
func BuildAlknet(ctx context.Context, repoRoot, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = filepath.Join(repoRoot, "alknet")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: go build ./alknet: %w\n%s", err, strings.TrimSpace(string(b)))
	}
	return nil
}
