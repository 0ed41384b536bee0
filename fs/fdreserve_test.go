package fs

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/alkdev/alknet/core/coretest"
)

// TestRefusedAtDescriptorReserve: while the node is down to its reserve of
// file descriptors a get is answered unavailable, a transient refusal,
// before any block file is opened; once there is room it is served.
func TestRefusedAtDescriptorReserve(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("open descriptors are counted on Linux only")
	}
	ctx := context.Background()
	sv := startServer(t, false)
	root := addFile(t, sv.store, pattern("reserve", 2*ChunkSize))
	cl, _ := sv.client(t, sv.reader)
	restore := coretest.AtFileReserve(t)
	_, _, err := cl.Get(ctx, root, Selection{})
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeUnavailable {
		t.Fatalf("get at the reserve: %v, want remote %s", err, CodeUnavailable)
	}
	restore()
	if _, _, err := cl.Get(ctx, root, Selection{}); err != nil {
		t.Fatalf("get with room again: %v", err)
	}
}
