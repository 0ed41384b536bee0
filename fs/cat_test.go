package fs

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
)

// TestClientCat checks that Cat writes exactly the selected bytes while
// they arrive, from an honest node, whatever the local store held before.
func TestClientCat(t *testing.T) {
	ctx := context.Background()
	sv := startServer(t, false)
	big := pattern("cat-big", 7*ChunkSize+123)
	dir := writeTree(t, map[string][]byte{"a/big.bin": big, "small.txt": []byte("small")})
	root, err := sv.store.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	file, err := sv.store.Resolve(ctx, root, "a/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	_, order := exportBytes(t, sv.store, file)
	tests := []struct {
		name string
		root cid.Cid
		sel  Selection
		held []cid.Cid // blocks the local store holds before
		want []byte
	}{
		{"whole file", file, Selection{}, nil, big},
		{"path", root, Selection{Path: "a/big.bin"}, nil, big},
		{"small file by path", root, Selection{Path: "small.txt"}, nil, []byte("small")},
		{"range across leaves", file, Selection{Range: &Range{Offset: ChunkSize - 10, Length: 2*ChunkSize + 20}}, nil, big[ChunkSize-10 : 3*ChunkSize+10]},
		{"range to the end", root, Selection{Path: "a/big.bin", Range: &Range{Offset: 6 * ChunkSize}}, nil, big[6*ChunkSize:]},
		{"some leaves held", file, Selection{}, []cid.Cid{order[2], order[5]}, big},
		{"all held", file, Selection{}, order, big},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, local := sv.client(t, sv.reader)
			for _, c := range tc.held {
				b, err := sv.store.block(ctx, c)
				if err != nil {
					t.Fatal(err)
				}
				if err := local.putMany(ctx, []blocks.Block{b}); err != nil {
					t.Fatal(err)
				}
			}
			var out bytes.Buffer
			target, n, _, err := cl.Cat(ctx, tc.root, tc.sel, &out)
			if err != nil {
				t.Fatal(err)
			}
			if target != file && tc.sel.Path != "small.txt" {
				t.Errorf("target %s, want %s", target, file)
			}
			if !bytes.Equal(out.Bytes(), tc.want) || n != int64(len(tc.want)) {
				t.Errorf("cat wrote %d bytes (reported %d), want %d; equal: %v", out.Len(), n, len(tc.want), bytes.Equal(out.Bytes(), tc.want))
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		cl, _ := sv.client(t, sv.reader)
		var out bytes.Buffer
		_, _, _, err := cl.Cat(ctx, root, Selection{Path: "a"}, &out)
		if !errors.Is(err, ErrNotFile) || !strings.Contains(err.Error(), "is a directory, not a file") || out.Len() != 0 {
			t.Fatalf("cat of a directory: %v, %d bytes written", err, out.Len())
		}
	})
}

// carOf writes a CAR naming root with the given blocks of s, in that
// order; corrupt flips a byte of the block it names.
func carOf(t *testing.T, s *Store, root cid.Cid, order []cid.Cid, corrupt cid.Cid) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := storage.NewWritable(&buf, []cid.Cid{root}, car.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range order {
		b, err := s.block(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Clone(b.RawData())
		if c == corrupt {
			data[len(data)/2] ^= 1
		}
		if err := w.Put(context.Background(), c.KeyString(), data); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestClientCatFromBadServer: a node that corrupts a block in the middle
// of the stream makes Cat fail naming it, after writing only the verified
// bytes before it; the bad block is not stored, those before it are. A
// node that sends the blocks out of order still gives the right bytes.
func TestClientCatFromBadServer(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	data := pattern("cat-bad", 6*ChunkSize)
	root := addFile(t, src, data)
	_, order := exportBytes(t, src, root) // root, then six leaves
	if len(order) != 7 {
		t.Fatalf("%d blocks, want 7", len(order))
	}
	reversed := []cid.Cid{order[0], order[6], order[5], order[4], order[3], order[2], order[1]}
	tests := []struct {
		name    string
		car     []byte
		bad     cid.Cid // named in the error, never stored
		written int     // bytes Cat may write: the verified prefix
	}{
		{"corrupt third leaf", carOf(t, src, root, order, order[3]), order[3], 2 * ChunkSize},
		{"corrupt first leaf", carOf(t, src, root, order, order[1]), order[1], 0},
		{"out of order", carOf(t, src, root, reversed, cid.Undef), cid.Undef, len(data)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := coretest.Start(t, core.Config{}, rogue{car: tc.car})
			local := openStore(t)
			cl := NewClient(node.Dial(t, core.NetworkQUIC, nil, ALPN), local)
			var out bytes.Buffer
			_, n, _, err := cl.Cat(ctx, root, Selection{}, &out)
			if !bytes.Equal(out.Bytes(), data[:tc.written]) || n != int64(tc.written) {
				t.Errorf("wrote %d bytes (reported %d), want the first %d of the file", out.Len(), n, tc.written)
			}
			if !tc.bad.Defined() {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.bad.String()) || !strings.Contains(err.Error(), "does not match its hash") {
				t.Fatalf("cat from a bad server: %v, want an error naming %s", err, tc.bad)
			}
			if ok, _ := local.Has(ctx, tc.bad); ok {
				t.Errorf("%s was stored", tc.bad)
			}
			for _, c := range order[:tc.written/ChunkSize+1] {
				if ok, _ := local.Has(ctx, c); !ok {
					t.Errorf("verified block %s was not stored", c)
				}
			}
		})
	}
}
