package ssh

import (
	"runtime"
	"strconv"
	"testing"

	xssh "golang.org/x/crypto/ssh"

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

	coretest.AtFileReserve(t)
	_, err := client.Dial("tcp", target)
	if got := openErr(err); got != xssh.ResourceShortage {
		t.Fatalf("forward at the descriptor reserve: %v (reason %v), want resource shortage", err, got)
	}
}
