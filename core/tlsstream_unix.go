//go:build unix

package core

import (
	"io"
	"net"
	"os"
	"syscall"
)

// readsWithoutWaiting: a tlsSocket can read here without waiting.
const readsWithoutWaiting = true

// readNoWait reads what the kernel holds for s into p, never waiting for
// more: errNothingBuffered when it holds nothing.
func (s *tlsSocket) readNoWait(p []byte) (int, error) {
	var n int
	var errno error
	if err := s.raw.Read(func(fd uintptr) bool {
		for {
			n, errno = syscall.Read(int(fd), p)
			if errno != syscall.EINTR {
				return true // never wait for readability
			}
		}
	}); err != nil {
		return 0, err
	}
	switch {
	case errno == syscall.EAGAIN:
		return 0, errNothingBuffered
	case errno != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: s.LocalAddr(), Addr: s.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}
