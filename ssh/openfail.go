package ssh

import (
	"errors"
	"os"
	"syscall"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/ssh/internal/dialfail"
)

// Messages of the open failures the server sends for a forward it could
// not connect (reason ConnectionFailed), so a client can tell why (a SOCKS
// reply code, say) without learning anything about the network behind the
// node.
const (
	msgRefused         = "connection refused"
	msgHostUnreachable = "host unreachable"
	msgNetUnreachable  = "network unreachable"
	msgConnectFailed   = "connect failed"
)

// dialFailure names why dialling a forward failed.
func dialFailure(err error) string {
	switch dialfail.Why(err) {
	case dialfail.Refused:
		return msgRefused
	case dialfail.NetworkUnreachable:
		return msgNetUnreachable
	case dialfail.HostUnreachable:
		return msgHostUnreachable
	}
	return msgConnectFailed
}

// openError is a channel the node refused: it unwraps to the
// *xssh.OpenChannelError and to a standard error saying why.
type openError struct {
	err   *xssh.OpenChannelError
	cause error
}

func (e *openError) Error() string   { return e.err.Error() }
func (e *openError) Unwrap() []error { return []error{e.err, e.cause} }

// openFailure adds to a refused channel open the standard error its reason
// and message stand for; other errors come back as they are.
func openFailure(err error) error {
	oe, ok := errors.AsType[*xssh.OpenChannelError](err)
	if !ok {
		return err
	}
	var cause error
	switch {
	case oe.Reason == xssh.Prohibited:
		cause = os.ErrPermission
	case oe.Reason != xssh.ConnectionFailed:
		return err
	case oe.Message == msgRefused:
		cause = syscall.ECONNREFUSED
	case oe.Message == msgHostUnreachable:
		cause = syscall.EHOSTUNREACH
	case oe.Message == msgNetUnreachable:
		cause = syscall.ENETUNREACH
	default:
		return err
	}
	return &openError{err: oe, cause: cause}
}
