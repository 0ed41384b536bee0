package sftp_test

import (
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/sftp"
)

// TestSweepPartialsUploadLeftover sweeps what a real upload leaves when its
// process dies before the handle is closed: the file the server created.
func TestSweepPartialsUploadLeftover(t *testing.T) {
	root := t.TempDir()
	f := start(t, sftp.Config{Root: root}, core.Limits{}, peer{"alice", rw})
	c, _ := f.client(t, core.NetworkQUIC, "alice")
	up, err := c.Create("up.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write([]byte("half an upload")); err != nil {
		t.Fatal(err)
	}
	parts := partFiles(t, root)
	if len(parts) != 1 {
		t.Fatalf("parts during the upload: %v, want one", parts)
	}
	// The upload is still open: a sweep with an earlier start keeps it.
	if n, err := sftp.SweepPartials(root, time.Now().Add(-time.Hour)); n != 0 || err != nil {
		t.Fatalf("sftp.SweepPartials(earlier) = %d, %v; want 0, nil", n, err)
	}
	// A process started after it (the one restarted after a crash) removes it.
	n, err := sftp.SweepPartials(root, time.Now().Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("SweepPartials = %d, %v; want 1, nil", n, err)
	}
	if left := partFiles(t, root); len(left) != 0 {
		t.Fatalf("left after sweep: %v", left)
	}
	_ = up.Close()
}
