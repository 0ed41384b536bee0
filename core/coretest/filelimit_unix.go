//go:build unix

package coretest

import (
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/alkdev/alknet/core"
)

// AtFileReserve lowers the process's soft RLIMIT_NOFILE so that it is down
// to its reserve of descriptors (core.FilesLow reports low), for a test of
// what a service refuses there. The returned func puts the limit back and
// waits until core.FilesLow sees it; it runs at the end of the test too,
// and a second call does nothing.
func AtFileReserve(t testing.TB) (restore func()) {
	t.Helper()
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	// With 64 or more files open, a limit 64 above the count is one whose
	// reserve (core.FileReserve) is 64: the process is down to it.
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
	if r := core.FileReserve(low.Cur); r != 64 {
		t.Fatalf("reserve %d at a limit of %d, want 64", r, low.Cur)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restore = sync.OnceFunc(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Fatal(err)
		}
		WaitFilesLow(t, false)
	})
	t.Cleanup(restore)
	WaitFilesLow(t, true)
	return restore
}
