package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The SSH scenario's child processes (sshd, `alknet serve`, iperf3, the
// forwarding clients) each run in their own process group, so that stopping
// one also stops what it started (ssh's ProxyCommand, sftp's -D command).

// childEnv is the environment of every child: the vault of each alknet data
// directory has an empty passphrase.
func childEnv() []string { return append(os.Environ(), "ALKNET_PASSPHRASE=") }

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
	return lastLines(string(o.buf), tailLines)
}

// child is a long-running process of the SSH scenario.
type child struct {
	name   string
	cmd    *exec.Cmd
	out    *procOutput
	exited chan struct{}
	err    error // Wait's answer, set before exited closes
}

// childReadyTimeout bounds the wait for a child's ready line.
const childReadyTimeout = 30 * time.Second

// startChild starts name with args and waits until its output (stdout and
// stderr) matches ready, returning the submatches. A child that exits or
// stays silent for childReadyTimeout is stopped and is an error carrying the
// end of its output.
func startChild(ctx context.Context, ready *regexp.Regexp, name string, args ...string) (*child, []string, error) {
	out := &procOutput{ready: ready, found: make(chan []string, 1)}
	cmd := exec.Command(name, args...)
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, out: out, exited: make(chan struct{})}
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
		return nil, nil, errors.Join(err, c.stop())
	case <-ctx.Done():
		return nil, nil, errors.Join(ctx.Err(), c.stop())
	}
}

// childStopTimeout bounds the wait for a child to exit after SIGTERM, before
// its group is killed.
const childStopTimeout = 5 * time.Second

// stop sends SIGTERM to the child's process group and waits for the child to
// exit, killing the group if it takes too long. An exit caused by the signal
// is not an error; a child that had died before is.
func (c *child) stop() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s had exited (%v):\n%s", c.name, c.err, c.out.tail())
	default:
	}
	pgid := c.cmd.Process.Pid
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

// runChild runs name with args to completion within timeout, in its own
// process group (killed whole when the time is up), with stdin as its input.
// It returns the combined output; a failure carries the output's end.
func runChild(ctx context.Context, timeout time.Duration, stdin, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = childEnv()
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
		return out, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, lastLines(string(out), tailLines))
	}
	return out, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
