package fs

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// ErrNotFound is matched (errors.Is) by every error about content the store
// or the remote node does not have: a missing block, an unknown pin, a path
// that does not resolve.
var ErrNotFound = errors.New("not found")

// ErrNotFile is matched by the error of [Client.Cat] when the selection
// names a directory or a symlink: nothing was written, and the blocks
// received so far are stored, so a [Client.Get] after it moves only the
// rest.
var ErrNotFile = errors.New("not a file")

// MissingError reports a block that is not in the store. It matches
// [ErrNotFound].
type MissingError struct {
	// CID is the missing block.
	CID cid.Cid
}

func (e *MissingError) Error() string { return fmt.Sprintf("block %s: not found", e.CID) }

// Is makes a MissingError match ErrNotFound.
func (e *MissingError) Is(target error) bool { return target == ErrNotFound }

// BlockError reports a received block that failed verification: its data
// does not hash to its CID, it is not linked from the blocks received
// before it (it belongs to another DAG or arrives out of order), or it
// cannot be decoded. Nothing from the failing block is stored.
type BlockError struct {
	// CID is the block as the sender named it.
	CID cid.Cid
	// Reason says what was wrong with it.
	Reason string
}

func (e *BlockError) Error() string { return fmt.Sprintf("fs: block %s: %s", e.CID, e.Reason) }

// Error codes of the alknet/fs protocol, carried in a failed answer.
const (
	// CodeBadRequest: the request could not be decoded or is invalid.
	CodeBadRequest = "bad_request"
	// CodeUnauthenticated: the operation needs an authenticated caller.
	CodeUnauthenticated = "unauthenticated"
	// CodeForbidden: the caller lacks the scope the operation needs.
	CodeForbidden = "forbidden"
	// CodeNotFound: the node does not have the content or path.
	CodeNotFound = "not_found"
	// CodeInvalidBlock: a block of a put failed verification.
	CodeInvalidBlock = "invalid_block"
	// CodeInternal: the node failed (a store it cannot read or write);
	// the request itself was fine, and the node's log says more.
	CodeInternal = "internal"
	// CodeUnavailable: the node cannot take the request now (its store's
	// disk is full, or it is shutting down); trying again later, or at
	// another node, may succeed.
	CodeUnavailable = "unavailable"
)

// requestError marks a failure caused by what the peer sent: a malformed
// CAR, or roots other than the request named. The handler answers it with
// [CodeBadRequest]; every other failure of a request that decoded is the
// node's own.
type requestError struct{ err error }

func (e *requestError) Error() string { return e.err.Error() }
func (e *requestError) Unwrap() error { return e.err }

// badRequest wraps err as the peer's fault.
func badRequest(err error) error { return &requestError{err: err} }

// RemoteError is a failed answer from an alknet/fs node. A not_found code
// matches [ErrNotFound].
type RemoteError struct {
	// Code is one of the Code constants.
	Code string `json:"code"`
	// Message says what failed.
	Message string `json:"message"`
}

func (e *RemoteError) Error() string { return fmt.Sprintf("fs: remote %s: %s", e.Code, e.Message) }

// Is makes a not_found RemoteError match ErrNotFound.
func (e *RemoteError) Is(target error) bool { return target == ErrNotFound && e.Code == CodeNotFound }
