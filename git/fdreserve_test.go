package git_test

import (
	"runtime"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/git"
)

// TestRefusedAtDescriptorReserve: while the node is down to its reserve of
// file descriptors a request is refused with an ERR line saying so, before
// any repository file is opened; once there is room it is served.
func TestRefusedAtDescriptorReserve(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("open descriptors are counted on Linux only")
	}
	f := start(t, git.Config{}, peer{"alice", rw})
	if err := f.srv.Create("app"); err != nil {
		t.Fatal(err)
	}
	conn := f.node.Dial(t, core.NetworkQUIC, f.keys["alice"], git.ALPN)
	request := pkt("git-upload-pack /app.git\x00host=x\x00") + "0000"
	restore := coretest.AtFileReserve(t)
	if got := exchange(t, conn, request); !strings.Contains(got, "ERR the node is out of file descriptors") {
		t.Errorf("at the reserve: got %q, want the out-of-descriptors ERR", got)
	}
	restore()
	if got := exchange(t, conn, request); strings.Contains(got, "ERR") {
		t.Errorf("with room again: got %q", got)
	}
}
