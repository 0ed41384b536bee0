// Package dialfail reads why a dial failed, in the terms the ssh server's
// channel open failures, alknet/fwd and the SOCKS5 server share. The accept
// loop and relay they use are core/netutil's.
package dialfail

import (
	"context"
	"errors"
	"net"
	"os"
	"syscall"
)

// Failure says why a connection could not be made, in the terms SSH open
// failures and SOCKS replies share.
type Failure int

// Failures, from [Why].
const (
	Other Failure = iota
	Denied
	Refused
	HostUnreachable
	NetworkUnreachable
)

// Why reads a dial error: os.ErrPermission is Denied; ECONNREFUSED is
// Refused; EHOSTUNREACH, a failed name lookup and a timeout are
// HostUnreachable; ENETUNREACH is NetworkUnreachable.
func Why(err error) Failure {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, os.ErrPermission):
		return Denied
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ENETUNREACH):
		return NetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.As(err, &dnsErr),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return HostUnreachable
	}
	return Other
}
