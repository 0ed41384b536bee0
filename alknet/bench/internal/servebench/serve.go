package servebench

import (
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

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
)

// ServeOptions configures [MeasureServe].
type ServeOptions struct {
	// Binary is the alknet executable; required.
	Binary string
	// passphrase is handed to the binary as ALKNET_PASSPHRASE; empty is
	// allowed.
	passphrase string
	// idle is how long the node idles before its memory is read; zero
	// means 2s.
	idle time.Duration
	// readyTimeout bounds the wait for the node to become ready, and then
	// for it to exit after SIGTERM; zero means 30s.
	readyTimeout time.Duration
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

// alpnsAttr finds the ALPNs in a listening line.
var alpnsAttr = regexp.MustCompile(`\balpns="?\[([^\]]*)\]`)

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
	if opts.idle == 0 {
		opts.idle = 2 * time.Second
	}
	if opts.readyTimeout == 0 {
		opts.readyTimeout = 30 * time.Second
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
	port, err := harness.FreePort()
	if err != nil {
		return res, err
	}
	hostport := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	pr, pw, err := os.Pipe()
	if err != nil {
		return res, err
	}
	cmd := exec.Command(opts.Binary, "serve", "--data-dir", dataDir, "--listen", hostport)
	cmd.Env = append(os.Environ(), "ALKNET_PASSPHRASE="+opts.passphrase)
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return res, fmt.Errorf("start %s: %w", opts.Binary, err)
	}
	pw.Close()
	out := &harness.LogTail{Ready: make(chan string, 1)}
	var wg sync.WaitGroup
	wg.Go(func() { out.Scan(pr) })
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
		case <-time.After(opts.readyTimeout):
			_ = cmd.Process.Kill()
			err = <-exited
			err = fmt.Errorf("no exit %v after SIGTERM, killed: %w", opts.readyTimeout, err)
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

	readyCtx, cancel := context.WithTimeout(ctx, opts.readyTimeout)
	defer cancel()
	var line string
	select {
	case line = <-out.Ready:
		res.ToLog = time.Since(start)
	case err := <-exited:
		exited <- err
		err = errors.Join(fmt.Errorf("exited before %q", harness.ListeningMarker), err)
		return res, errors.Join(err, stop())
	case <-readyCtx.Done():
		return res, errors.Join(fmt.Errorf("no %q line: %w", harness.ListeningMarker, readyCtx.Err()), stop())
	}
	if err := dialReady(readyCtx, line, hostport); err != nil {
		return res, errors.Join(err, stop())
	}
	res.ToDial = time.Since(start)

	select {
	case <-time.After(opts.idle):
	case <-ctx.Done():
		return res, errors.Join(ctx.Err(), stop())
	}
	if res.RSS, res.HWM, err = harness.ProcMemory(cmd.Process.Pid); err != nil {
		return res, errors.Join(err, stop())
	}
	return res, stop()
}

// dialReady makes QUIC handshakes with the node named in the listening log
// line, for the first ALPN it lists, until one succeeds.
func dialReady(ctx context.Context, line, hostport string) error {
	m := harness.NodeAttr.FindStringSubmatch(line)
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
