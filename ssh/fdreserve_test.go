package ssh

import (
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// TestForwardRefusedAtDescriptorReserve: when the node is down to its
// reserve of file descriptors, a forward is refused with "resource
// shortage" instead of taking one of the last descriptors.
func TestForwardRefusedAtDescriptorReserve(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("open descriptors are counted on Linux only")
	}
	e := newEnv(t, nil)
	echo := echoServer(t)
	key, alice := newPeer(t, "alice", ScopeConnect, ScopeForward)
	e.setPeers(alice)
	e.setPolicy(Policy{Forward: mustRules(t, "allow self")})
	client := e.mustDial(key, "alice")
	target := "127.0.0.1:" + strconv.Itoa(echo.Port)

	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	// With 64 more files open, a limit 64 above the count has a reserve of
	// 64 (core.FileReserve): the process is down to it.
	for range 64 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
	}
	open, err := core.OpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	low := orig
	low.Cur = uint64(open + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	// Put the limit back, and wait for the gauge to see it, before any
	// other test runs.
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Fatal(err)
		}
		coretest.WaitFilesLow(t, false)
	})
	coretest.WaitFilesLow(t, true)
	_, err = client.Dial("tcp", target)
	if got := openErr(err); got != xssh.ResourceShortage {
		t.Fatalf("forward at the descriptor reserve: %v (reason %v), want resource shortage", err, got)
	}
}
