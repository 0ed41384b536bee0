package call

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Code is a call.error code: one of the protocol codes below or an
// operation's declared code.
type Code string

// Protocol error codes.
const (
	// CodeNotFound: no such operation (or internal, or not reachable from here).
	CodeNotFound Code = "NOT_FOUND"
	// CodeForbidden: the caller may not call the operation.
	CodeForbidden Code = "FORBIDDEN"
	// CodeInvalidInput: the input fails the operation's input schema; details
	// name the failing path.
	CodeInvalidInput Code = "INVALID_INPUT"
	// CodeInvalidOperationType: a call used the wrong shape (a subscription
	// called as a query, or the reverse).
	CodeInvalidOperationType Code = "INVALID_OPERATION_TYPE"
	// CodeInternal: the handler or the node failed.
	CodeInternal Code = "INTERNAL"
	// CodeTimeout: the deadline passed. Retryable.
	CodeTimeout Code = "TIMEOUT"
	// CodeUnavailable: the peer is gone. Retryable.
	CodeUnavailable Code = "UNAVAILABLE"
)

// protocolCodes are the codes the protocol itself defines.
var protocolCodes = []Code{CodeNotFound, CodeForbidden, CodeInvalidInput, CodeInvalidOperationType, CodeInternal, CodeTimeout, CodeUnavailable}

// retryable reports whether a protocol code is retryable.
func (c Code) retryable() bool { return c == CodeTimeout || c == CodeUnavailable }

// Error is a call.error: the terminal answer of a failed call. Handlers
// return it to answer with a declared code; any other error becomes
// INTERNAL.
type Error struct {
	Code      Code            `json:"code"`
	Message   string          `json:"message"`
	Retryable bool            `json:"retryable"`
	Details   json.RawMessage `json:"details,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("call: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with code and a formatted message; retryable
// follows the code.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Retryable: code.retryable()}
}

// withDetails returns e with details encoded as JSON.
func (e *Error) withDetails(v any) *Error {
	if b, err := json.Marshal(v); err == nil {
		e.Details = b
	}
	return e
}

// IsCode reports whether err is an *Error with code.
func IsCode(err error, code Code) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.Code == code
}
