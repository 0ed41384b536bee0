package node

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// sameUser refuses a socket connection from another user than the node's:
// the socket's mode already keeps others out; this holds even if its
// directory or mode were changed.
func sameUser(uc *net.UnixConn) error {
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if uid := os.Getuid(); int(cred.Uid) != uid {
		return fmt.Errorf("uid %d is not the node's (%d)", cred.Uid, uid)
	}
	return nil
}
