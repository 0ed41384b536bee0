package core

import (
	"net"
	"syscall"
)

// udpBufferSizes reads the kernel's actual socket buffer sizes.
func udpBufferSizes(c *net.UDPConn) (rcv, snd int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		rcv, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		if serr == nil {
			snd, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
		}
	})
	if err == nil {
		err = serr
	}
	// Linux reports twice the requested size (it counts bookkeeping).
	return rcv / 2, snd / 2, err
}
