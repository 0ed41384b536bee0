//go:build unix

package core

import (
	"fmt"
	"syscall"
)

func fileLimit() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("core: read the file descriptor limit: %w", err)
	}
	return uint64(rl.Cur), uint64(rl.Max), nil
}

func raiseFileLimit() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("core: read the file descriptor limit: %w", err)
	}
	// Go's runtime sets Cur to Max-1 and restores the original limit in
	// child processes unless the program sets RLIMIT_NOFILE itself.
	if rl.Cur+1 >= rl.Max {
		return uint64(rl.Cur), uint64(rl.Max), nil
	}
	want := rl
	want.Cur = want.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return uint64(rl.Cur), uint64(rl.Max), fmt.Errorf("core: raise the file descriptor limit to %d: %w", uint64(want.Max), err)
	}
	return uint64(want.Cur), uint64(want.Max), nil
}
