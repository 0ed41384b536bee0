package core

import (
	"errors"
	"fmt"
)

// ErrorCode is the application error code a connection is closed with. QUIC
// carries it to the peer; TCP cannot, and drops it.
type ErrorCode uint64

// Close codes core uses. Handlers may define their own from 0x100 up.
const (
	// CodeNoError is a normal close.
	CodeNoError ErrorCode = 0x0
	// CodeShutdown: the node is shutting down.
	CodeShutdown ErrorCode = 0x1
	// CodeRefused: a connection limit was reached.
	CodeRefused ErrorCode = 0x2
	// CodeRevoked: the peer's key or token was disabled or expired.
	CodeRevoked ErrorCode = 0x3
	// CodeInternal: the handler failed.
	CodeInternal ErrorCode = 0x4
	// CodeForbidden: the peer may not use this protocol.
	CodeForbidden ErrorCode = 0x5
	// CodeProtocol: the peer broke the protocol.
	CodeProtocol ErrorCode = 0x6
	// CodeIdle: the connection had nothing in flight for the application
	// idle timeout.
	CodeIdle ErrorCode = 0x7
	// CodeBusy: the node refused work over a budget; retry later.
	CodeBusy ErrorCode = 0x8
)

// String returns the code's name.
func (c ErrorCode) String() string {
	switch c {
	case CodeNoError:
		return "no error"
	case CodeShutdown:
		return "shutdown"
	case CodeRefused:
		return "refused"
	case CodeRevoked:
		return "revoked"
	case CodeInternal:
		return "internal error"
	case CodeForbidden:
		return "forbidden"
	case CodeProtocol:
		return "protocol error"
	case CodeIdle:
		return "idle"
	case CodeBusy:
		return "busy"
	}
	return fmt.Sprintf("code 0x%x", uint64(c))
}

// ErrDuplicateALPN is returned when two handlers claim the same ALPN.
var ErrDuplicateALPN = errors.New("core: duplicate ALPN")

// ErrEndpointClosed is returned by [Endpoint.Serve] after Shutdown or Close.
var ErrEndpointClosed = errors.New("core: endpoint closed")

// ErrSingleStream is returned by OpenStream on a single-stream connection.
var ErrSingleStream = errors.New("core: single-stream connection cannot open streams")
