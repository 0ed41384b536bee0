package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"

	"github.com/alkdev/alknet/core"
)

// failingWrites is a blockstore whose writes fail with err, as a full or
// broken disk does; reads go through.
type failingWrites struct {
	blockstore.Blockstore
	err error
}

func (f failingWrites) Put(context.Context, blocks.Block) error { return f.err }

func (f failingWrites) PutMany(context.Context, []blocks.Block) error { return f.err }

// TestPutFailureCodes: a put that fails because of the node (its store
// cannot write) reaches the client as internal or unavailable, never as the
// client's bad_request, which stays for what the client got wrong.
func TestPutFailureCodes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		storeErr error                                              // the server store's write error; nil: none
		body     func(t *testing.T, local *Store) (cid.Cid, []byte) // nil: a correct CAR through Client.Put
		want     string
	}{
		{name: "store write fails", storeErr: errors.New("input/output error"), want: CodeInternal},
		{name: "store full", storeErr: fmt.Errorf("write: %w", syscall.ENOSPC), want: CodeUnavailable},
		{name: "garbage body", want: CodeBadRequest, body: func(t *testing.T, local *Store) (cid.Cid, []byte) {
			return addFile(t, local, []byte("x")), []byte("not a CAR at all")
		}},
		{name: "CAR of another root", want: CodeBadRequest, body: func(t *testing.T, local *Store) (cid.Cid, []byte) {
			other := addFile(t, local, []byte("other"))
			var car bytes.Buffer
			if _, err := local.ExportCAR(ctx, other, Selection{}, &car); err != nil {
				t.Fatal(err)
			}
			return addFile(t, local, []byte("asked")), car.Bytes()
		}},
		{name: "CAR cut short", want: CodeBadRequest, body: func(t *testing.T, local *Store) (cid.Cid, []byte) {
			root := addFile(t, local, pattern("cut", 3*ChunkSize))
			var car bytes.Buffer
			if _, err := local.ExportCAR(ctx, root, Selection{}, &car); err != nil {
				t.Fatal(err)
			}
			return root, car.Bytes()[:car.Len()-10]
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sv := startServer(t, false)
			if tc.storeErr != nil {
				sv.store.blocks = failingWrites{Blockstore: sv.store.blocks, err: tc.storeErr}
				sv.store.writeBlocks = func([]blocks.Block) error { return tc.storeErr }
			}
			cl, local := sv.client(t, sv.writer)
			var err error
			if tc.body == nil {
				root := addFile(t, local, pattern(tc.name, 2*ChunkSize))
				_, err = cl.Put(ctx, root, "p")
			} else {
				root, body := tc.body(t, local)
				_, _, err = cl.roundTrip(ctx, Request{Op: OpPut, Root: root.String()}, func(st core.Stream) error {
					_, err := io.Copy(st, bytes.NewReader(body))
					return err
				})
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tc.want {
				t.Fatalf("put: %v, want remote %s", err, tc.want)
			}
			if tc.storeErr != nil && bytes.Contains([]byte(re.Message), []byte(tc.storeErr.Error())) {
				t.Errorf("the node's own error reached the client: %q", re.Message)
			}
		})
	}
}
