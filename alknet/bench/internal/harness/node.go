package harness

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
)

// ListeningMarker is in the log line core.Endpoint writes once it serves.
const ListeningMarker = "msg=listening"

// NodeAttr finds the node ID in a listening line.
var NodeAttr = regexp.MustCompile(`\bnode=([a-z0-9]+)`)

// LogTail scans a child's output: it hands the first listening line to
// ready and keeps the last lines for error messages.
type LogTail struct {
	Ready chan string

	mu    sync.Mutex
	lines []string
}

// TailLines is how many output lines a logTail keeps.
const TailLines = 20

func (t *LogTail) Scan(r *os.File) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		t.mu.Lock()
		t.lines = append(t.lines, line)
		if len(t.lines) > TailLines {
			t.lines = t.lines[1:]
		}
		t.mu.Unlock()
		if !sent && strings.Contains(line, ListeningMarker) {
			t.Ready <- line
			sent = true
		}
	}
}

// String returns the kept lines.
func (t *LogTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// ProcMemory reads VmRSS and VmHWM of pid, in bytes.
func ProcMemory(pid int) (rss, hwm int64, err error) {
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

// FreePort returns a port free on both UDP and TCP on 127.0.0.1 at the time
// of the call.
func FreePort() (int, error) {
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

var ListeningLine = regexp.MustCompile(`msg=listening addr=\S+ node=(\S+)`)

// BuildTempAlknet builds ./alknet of the repository around the working
// directory into a new temporary directory; remove deletes it.
func BuildTempAlknet(ctx context.Context) (bin string, remove func() error, err error) {
	root, err := FindRepoRoot(".")
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "alknet-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	remove = func() error { return os.RemoveAll(dir) }
	bin = filepath.Join(dir, "alknet")
	if err := BuildAlknet(ctx, root, bin); err != nil {
		return "", nil, errors.Join(err, remove())
	}
	return bin, remove, nil
}
