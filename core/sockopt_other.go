//go:build !linux

package core

import (
	"errors"
	"net"
)

// udpBufferSizes is not implemented off Linux; the endpoint then logs nothing
// about buffers.
func udpBufferSizes(*net.UDPConn) (rcv, snd int, err error) {
	return 0, 0, errors.New("not supported")
}
