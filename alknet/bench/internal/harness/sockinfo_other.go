//go:build !linux

package harness

import (
	"errors"
	"os"
	"strconv"
)

// errUnsupported is the answer of the Linux-only socket probes elsewhere.
var errUnsupported = errors.New("only measured on Linux")

// UDPSocketBuffers is only implemented on Linux.
func UDPSocketBuffers(int) SocketBuffers { return SocketBuffers{Err: errUnsupported} }

// GSOProbe is what the kernel said about UDP generic segmentation offload
// on a loopback socket.
type GSOProbe struct {
	// Sockopt: getsockopt(IPPROTO_UDP, UDP_SEGMENT) succeeded.
	Sockopt bool
	// Send: a segmented send arrived as separate datagrams.
	Send bool
	// DisabledByEnv: QUIC_GO_DISABLE_GSO is set to a true value.
	DisabledByEnv bool
	// Err says why Send is false.
	Err error
}

// ProbeGSO reports GSO as unavailable: quic-go uses it on Linux only.
func ProbeGSO() GSOProbe {
	disabled, _ := strconv.ParseBool(os.Getenv("QUIC_GO_DISABLE_GSO"))
	return GSOProbe{DisabledByEnv: disabled, Err: errUnsupported}
}
