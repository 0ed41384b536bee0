package fs

import (
	"context"
	"errors"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/ipfs/go-cid"
)

// CodeNotFoundOp is the call.error code of the fs operations for content,
// paths or pins the node does not have.
const CodeNotFoundOp call.Code = "FS_NOT_FOUND"

// PathInput names a DAG by root and optional path.
type PathInput struct {
	CID  string `json:"cid" jsonschema:"root CID"`
	Path string `json:"path,omitempty" jsonschema:"slash-separated path below the root"`
}

// PinInput names a pin and, for fs/pin, its root.
type PinInput struct {
	Name string `json:"name" jsonschema:"pin name: 1..128 of A-Z a-z 0-9 . _ - / : @ +"`
	CID  string `json:"cid,omitempty" jsonschema:"root to pin (fs/pin only)"`
}

// RegisterOps adds the fs operations on s to reg: fs/stat, fs/ls and
// fs/pins (fs:read), fs/pin and fs/unpin (fs:write), fs/gc (admin).
func RegisterOps(reg *call.Registry, s *Store) error {
	read := core.AccessControl{AllScopes: []string{ScopeRead}}
	write := core.AccessControl{AllScopes: []string{ScopeWrite}}
	notFound := []call.ErrorDef{{Code: CodeNotFoundOp, Description: "the node does not have the content, path or pin"}}
	return errors.Join(
		call.Register(reg, call.Spec{Name: "fs/stat", Type: call.Query, Access: read, Errors: notFound,
			Description: "type, size and block count of a DAG in the node's store"},
			func(ctx context.Context, _ *call.Request, in PathInput) (Stat, error) {
				c, err := resolveInput(ctx, s, in)
				if err != nil {
					return Stat{}, err
				}
				st, err := s.Stat(ctx, c)
				return st, opError(err)
			}),
		call.Register(reg, call.Spec{Name: "fs/ls", Type: call.Query, Access: read, Errors: notFound,
			Description: "entries of a directory in the node's store"},
			func(ctx context.Context, _ *call.Request, in PathInput) ([]Entry, error) {
				c, err := resolveInput(ctx, s, in)
				if err != nil {
					return nil, err
				}
				es, err := s.Ls(ctx, c)
				return es, opError(err)
			}),
		call.Register(reg, call.Spec{Name: "fs/pins", Type: call.Query, Access: read,
			Description: "the node's pins, by name"},
			func(context.Context, *call.Request, struct{}) ([]Pin, error) { return s.Pins(), nil }),
		call.Register(reg, call.Spec{Name: "fs/pin", Type: call.Mutation, Access: write, Errors: notFound,
			Description: "pin a root (its whole DAG must be in the store) under a name"},
			func(ctx context.Context, _ *call.Request, in PinInput) (Pin, error) {
				c, err := cid.Decode(in.CID)
				if err != nil {
					return Pin{}, call.Errorf(call.CodeInvalidInput, "cid: %v", err)
				}
				if err := s.Pin(ctx, in.Name, c); err != nil {
					return Pin{}, opError(err)
				}
				return Pin{Name: in.Name, CID: c.String()}, nil
			}),
		call.Register(reg, call.Spec{Name: "fs/unpin", Type: call.Mutation, Access: write, Errors: notFound,
			Description: "remove a pin; the content stays until a gc"},
			func(_ context.Context, _ *call.Request, in PinInput) (Pin, error) {
				return Pin{Name: in.Name}, opError(s.Unpin(in.Name))
			}),
		call.Register(reg, call.Spec{Name: "fs/gc", Type: call.Mutation, Access: core.AccessControl{AllScopes: []string{"admin"}},
			Description: "delete every block not reachable from a pin or a running transfer", Timeout: -1},
			func(ctx context.Context, _ *call.Request, _ struct{}) (GCResult, error) {
				res, err := s.GC(ctx)
				return res, opError(err)
			}),
	)
}

func resolveInput(ctx context.Context, s *Store, in PathInput) (cid.Cid, error) {
	root, err := cid.Decode(in.CID)
	if err != nil {
		return cid.Undef, call.Errorf(call.CodeInvalidInput, "cid: %v", err)
	}
	c, err := s.Resolve(ctx, root, in.Path)
	return c, opError(err)
}

// opError maps not-found errors to CodeNotFoundOp; the rest stay as they are.
func opError(err error) error {
	if err != nil && errors.Is(err, ErrNotFound) {
		return call.Errorf(CodeNotFoundOp, "%v", err)
	}
	return err
}
