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

// OffloadProbe is what the kernel said about UDP's segmentation and
// receive offloads on loopback sockets.
type OffloadProbe struct {
	// Sockopt: getsockopt(IPPROTO_UDP, UDP_SEGMENT) succeeded.
	Sockopt bool
	// Send: a segmented send arrived as separate datagrams.
	Send bool
	// DisabledByEnv: QUIC_GO_DISABLE_GSO is set to a true value.
	DisabledByEnv bool
	// Coalesced: a segmented send to a socket with UDP_GRO on arrived as
	// one message.
	Coalesced bool
	// GRODisabledByEnv: QUIC_GO_DISABLE_GRO is set to a true value.
	GRODisabledByEnv bool
	// Err says why Send or Coalesced is false.
	Err error
}

// ProbeOffloads reports the offloads as unavailable: quic-go uses them on
// Linux only.
func ProbeOffloads() OffloadProbe {
	gso, _ := strconv.ParseBool(os.Getenv("QUIC_GO_DISABLE_GSO"))
	gro, _ := strconv.ParseBool(os.Getenv("QUIC_GO_DISABLE_GRO"))
	return OffloadProbe{DisabledByEnv: gso, GRODisabledByEnv: gro, Err: errUnsupported}
}
