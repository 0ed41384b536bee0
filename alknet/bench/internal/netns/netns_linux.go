package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// An NS is a named network namespace (`ip netns add NAME`), held open
// until Close. Its methods are safe for concurrent use.
type NS struct {
	name string

	mu sync.RWMutex // guards fd against Close while Do runs
	fd int

	closeOnce sync.Once
	closeErr  error
}

// Add creates the namespace name with `ip netns add` and brings its
// loopback device up. Close removes it.
func Add(ctx context.Context, name string) (*NS, error) {
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	n := &NS{name: name, fd: -1}
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open namespace %s: %w", name, err), n.Close())
	}
	n.fd = fd
	if out, err := exec.CommandContext(ctx, "ip", "-n", name, "link", "set", "dev", "lo", "up").CombinedOutput(); err != nil {
		return nil, errors.Join(fmt.Errorf("namespace %s: ip link set lo up: %w: %s", name, err, bytes.TrimSpace(out)), n.Close())
	}
	return n, nil
}

// Name is the namespace's name, for `ip -n` or `ip netns exec`.
func (n *NS) Name() string { return n.name }

// Command returns a command running name with args in the namespace
// (through `ip netns exec`), killed when ctx ends. Like exec.Command, it
// is not started yet.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// Prefix is the command-line prefix that runs a program in the namespace:
// ip netns exec NAME.
func (n *NS) Prefix() []string { return []string{"ip", "netns", "exec", n.name} }

// IP runs `ip -n NAME -batch -` with script, one ip command a line.
func (n *NS) IP(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "ip", "-n", n.name, "-batch", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("namespace %s: ip -batch: %w: %s", n.name, err, bytes.TrimSpace(out))
	}
	return nil
}

// Do runs fn on an OS thread in the namespace and waits for it. The
// sockets fn creates (net.Listen, net.Dial, ...) stay in that namespace
// and may be used anywhere afterwards; goroutines fn starts do not run
// in it.
func (n *NS) Do(fn func() error) error {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.fd < 0 {
		return fmt.Errorf("namespace %s: closed", n.name)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("namespace %s: %w", n.name, err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", n.name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and ends with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", n.name, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Close removes the namespace. Processes still running in it are not
// killed (the kernel removes the namespace when the last one leaves). It
// is safe to call more than once.
func (n *NS) Close() error {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.fd >= 0 {
			unix.Close(n.fd)
			n.fd = -1
		}
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			n.closeErr = fmt.Errorf("ip netns del %s: %w: %s", n.name, err, bytes.TrimSpace(out))
		}
	})
	return n.closeErr
}

// RemoveStale deletes the namespaces named prefix+PID+"-"+... whose
// creating process PID no longer runs (it crashed or was killed before
// closing them).
func RemoveStale(ctx context.Context, prefix string) {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() || ProcessAlive(pid) {
			continue
		}
		_ = exec.CommandContext(ctx, "ip", "netns", "del", e.Name()).Run()
	}
}

// List lists the namespaces whose names start with prefix.
func List(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w: %s", err, bytes.TrimSpace(out))
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, prefix) {
			name, _, _ := strings.Cut(line, " ")
			names = append(names, name)
		}
	}
	return names, nil
}

// ProcessAlive reports whether process pid runs: it exists and is not a
// zombie (a killed test binary whose parent has not reaped it).
func ProcessAlive(pid int) bool {
	if unix.Kill(pid, 0) == unix.ESRCH {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
