package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The SSH scenario's child processes (sshd, `alknet serve`, iperf3, the
// forwarding clients) each run in their own process group, so that stopping
// one also stops what it started (ssh's ProxyCommand, sftp's -D command).

// ChildEnv is the environment of every child: the vault of each alknet data
// directory has an empty passphrase.
func ChildEnv() []string { return append(os.Environ(), "ALKNET_PASSPHRASE=") }

// procOutput keeps the tail of a child's output and reports the first match
// of a regular expression in it.
type procOutput struct {
	ready *regexp.Regexp
	found chan []string

	mu   sync.Mutex
	buf  []byte
	sent bool
}

// procOutputMax is how much output a procOutput keeps.
const procOutputMax = 64 << 10

// Write keeps p and looks for the ready expression.
func (o *procOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	if !o.sent && o.ready != nil {
		if m := o.ready.FindSubmatch(o.buf); m != nil {
			sub := make([]string, len(m))
			for i, s := range m {
				sub[i] = string(s)
			}
			o.found <- sub
			o.sent = true
		}
	}
	if len(o.buf) > procOutputMax {
		o.buf = append(o.buf[:0], o.buf[len(o.buf)-procOutputMax/2:]...)
	}
	return len(p), nil
}

// tail returns the last lines of the output.
func (o *procOutput) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return LastLines(string(o.buf), TailLines)
}

// Child is a long-running process of the SSH scenario.
type Child struct {
	name   string
	Cmd    *exec.Cmd
	out    *procOutput
	exited chan struct{}
	err    error // Wait's answer, set before exited closes
}

// childReadyTimeout bounds the wait for a child's ready line.
const childReadyTimeout = 30 * time.Second

// StartChild starts name with args and waits until its output (stdout and
// stderr) matches ready, returning the submatches. A child that exits or
// stays silent for childReadyTimeout is stopped and is an error carrying the
// end of its output.
func StartChild(ctx context.Context, ready *regexp.Regexp, name string, args ...string) (*Child, []string, error) {
	out := &procOutput{ready: ready, found: make(chan []string, 1)}
	cmd := exec.Command(name, args...)
	cmd.Env = ChildEnv()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{name: name, Cmd: cmd, out: out, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	timer := time.NewTimer(childReadyTimeout)
	defer timer.Stop()
	select {
	case m := <-out.found:
		return c, m, nil
	case <-c.exited:
		return nil, nil, fmt.Errorf("%s exited before it was ready (%v):\n%s", name, c.err, out.tail())
	case <-timer.C:
		err := fmt.Errorf("%s not ready after %v:\n%s", name, childReadyTimeout, out.tail())
		return nil, nil, errors.Join(err, c.Stop())
	case <-ctx.Done():
		return nil, nil, errors.Join(ctx.Err(), c.Stop())
	}
}

// Output is the end of the child's output so far (stdout and stderr, the
// last 32 to 64 KiB).
func (c *Child) Output() string {
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	return string(c.out.buf)
}

// WaitOutput waits until the child's output matches re, polling, for at
// most timeout or until ctx ends.
func (c *Child) WaitOutput(ctx context.Context, re *regexp.Regexp, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !re.MatchString(c.Output()) {
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited (%v) before its output matched %q:\n%s", c.name, c.err, re, c.out.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: output did not match %q within %v:\n%s", c.name, re, timeout, c.out.tail())
		}
		if err := Sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// childStopTimeout bounds the wait for a child to exit after SIGTERM, before
// its group is killed.
const childStopTimeout = 5 * time.Second

// Stop sends SIGTERM to the child's process group and waits for the child to
// exit, killing the group if it takes too long. An exit caused by the signal
// is not an error; a child that had died before is.
func (c *Child) Stop() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s had exited (%v):\n%s", c.name, c.err, c.out.tail())
	default:
	}
	pgid := c.Cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(childStopTimeout):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.exited
		return fmt.Errorf("%s did not exit %v after SIGTERM; killed", c.name, childStopTimeout)
	}
	// The rest of the group (ssh's ProxyCommand) ends with its parent; make
	// sure nothing of it stays behind.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// RunChild runs name with args to completion within timeout, in its own
// process group (killed whole when the time is up), with stdin as its input.
// It returns the combined output; a failure carries the output's end.
func RunChild(ctx context.Context, timeout time.Duration, stdin, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = ChildEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, LastLines(string(out), TailLines))
	}
	return out, nil
}

// LastLines returns the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fsCommandTimeout bounds one measured command.
const fsCommandTimeout = 15 * time.Minute

// TimeCommand runs name with args, stdout kept only if short (perf's
// report; a cat's bytes go to /dev/null), and returns its wall time and
// peak RSS.
func TimeCommand(ctx context.Context, name string, args ...string) (wall time.Duration, peak int64, stdout []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, fsCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = ChildEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if len(args) > 1 && args[1] == "cat" {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return 0, 0, nil, err
		}
		defer null.Close()
		cmd.Stdout = null
	}
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		return wall, 0, nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, LastLines(errOut.String(), TailLines))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		peak = ru.Maxrss << 10 // KiB on Linux
	}
	return wall, peak, out.Bytes(), nil
}

// ResetHWM sets pid's VmHWM to its current VmRSS (proc(5), clear_refs 5).
func ResetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// AlknetID makes the data dir dir a client identity with the alknet
// binary bin (`alknet init`, unless it holds a vault already: only init
// and serve create one) and returns its NodeID and its SSH public key
// ("ssh-ed25519 BASE64"), from `alknet id`'s first two lines.
func AlknetID(ctx context.Context, bin, dir string) (id, sshKey string, err error) {
	if _, err := os.Stat(filepath.Join(dir, "vault")); os.IsNotExist(err) {
		if _, err := RunChild(ctx, 30*time.Second, "", bin, "init", "--data-dir", dir); err != nil {
			return "", "", fmt.Errorf("bench: alknet init: %w", err)
		}
	}
	out, err := RunChild(ctx, 30*time.Second, "", bin, "id", "--data-dir", dir)
	if err != nil {
		return "", "", fmt.Errorf("bench: alknet id: %w", err)
	}
	// The key line follows the NodeID line (a pin line may follow it).
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i := 1; i < len(lines); i++ {
		if f := strings.Fields(lines[i]); len(f) >= 2 && f[0] == "ssh-ed25519" {
			return strings.TrimSpace(lines[i-1]), f[0] + " " + f[1], nil
		}
	}
	return "", "", fmt.Errorf("bench: alknet id: unexpected output %q", LastLines(string(out), 3))
}

// Sleep waits d, or until ctx ends (its error).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
