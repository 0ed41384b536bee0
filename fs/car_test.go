package fs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	"github.com/multiformats/go-varint"
)

// exportBytes returns the CAR of root's whole DAG and the blocks in it in
// order.
func exportBytes(t testing.TB, s *Store, root cid.Cid) ([]byte, []cid.Cid) {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.ExportCAR(context.Background(), root, Selection{}, &buf); err != nil {
		t.Fatal(err)
	}
	var order []cid.Cid
	if _, err := s.walk(context.Background(), root, func(b blocks.Block) error {
		order = append(order, b.Cid())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), order
}

func TestImportCARRoundTrip(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	ctx := context.Background()
	dir := writeTree(t, map[string][]byte{"x": pattern("x", 3*ChunkSize), "y/z": []byte("z")})
	root, err := src.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, order := exportBytes(t, src, root)
	roots, st, err := dst.ImportCAR(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0] != root || st.Blocks != len(order) {
		t.Errorf("import = %v, %+v; want %s and %d blocks", roots, st, root, len(order))
	}
	// Importing again stores nothing new and still succeeds.
	if _, _, err := dst.ImportCAR(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if countBlocks(t, dst) != len(order) {
		t.Errorf("%d blocks after the second import, want %d", countBlocks(t, dst), len(order))
	}
}

// TestImportCARRejects feeds bad CAR streams and checks the error names
// the block and that nothing unverified was stored.
func TestImportCARRejects(t *testing.T) {
	src := openStore(t)
	ctx := context.Background()
	root := addFile(t, src, pattern("victim", 4*ChunkSize))
	other := addFile(t, src, pattern("other", 2*ChunkSize))
	good, order := exportBytes(t, src, root)
	_, otherOrder := exportBytes(t, src, other)
	last := order[len(order)-1]

	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 0xff // last byte of the last block's data

	var mixed bytes.Buffer
	w, err := storage.NewWritable(&mixed, []cid.Cid{root}, car.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []cid.Cid{root, order[1], otherOrder[1]} {
		b, err := src.block(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put(ctx, c.KeyString(), b.RawData()); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		name   string
		data   []byte
		bad    cid.Cid // named in the error and never stored
		reason string
	}{
		{"corrupted block", corrupt, last, "does not match its hash"},
		{"block of another DAG", mixed.Bytes(), otherOrder[1], "not linked"},
		{"truncated inside a block", good[:len(good)-1000], last, "read CAR"},
		{"truncated between blocks", good[:len(good)-(ChunkSize+39)], last, "incomplete"}, // cut: varint 3 + CID 36 + data
		{"garbage", []byte("not a car at all"), cid.Undef, "CAR header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := openStore(t)
			_, _, err := dst.ImportCAR(ctx, bytes.NewReader(tc.data))
			if err == nil {
				t.Fatal("import succeeded")
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			if tc.bad.Defined() {
				var be *BlockError
				if errors.As(err, &be) && be.CID != tc.bad {
					t.Errorf("error names %s, want %s", be.CID, tc.bad)
				}
				if strings.Contains(tc.reason, "hash") || strings.Contains(tc.reason, "linked") || strings.Contains(tc.reason, "incomplete") {
					if !strings.Contains(err.Error(), tc.bad.String()) {
						t.Errorf("error %q does not name %s", err, tc.bad)
					}
				}
				if ok, _ := dst.Has(ctx, tc.bad); ok {
					t.Errorf("%s was stored", tc.bad)
				}
			}
		})
	}
}

// TestImportCARDeclaredSection checks that a section's declared length is
// not allocated before its bytes arrive: a peer that declares the largest
// section and sends a little of it makes the receiver allocate about what
// it sent, and the import fails as truncated.
func TestImportCARDeclaredSection(t *testing.T) {
	src, dst := openStore(t), openStore(t)
	root := addFile(t, src, pattern("declared", ChunkSize))
	good, _ := exportBytes(t, src, root)
	hdr, m, err := varint.FromUvarint(good)
	if err != nil {
		t.Fatal(err)
	}
	stream := append(bytes.Clone(good[:m+int(hdr)]), varint.ToUvarint(MaxBlockBytes+256)...)
	stream = append(stream, make([]byte, 1000)...)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err = dst.ImportCAR(context.Background(), bytes.NewReader(stream))
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("import of a truncated section: %v, want unexpected EOF", err)
	}
	// The import's own buffers (a 64 KiB reader, the first 64 KiB of the
	// section, the writer) stay far below the declared 2 MiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > MaxBlockBytes/2 {
		t.Errorf("import allocated %d bytes for a section of %d declared and 1000 sent", got, MaxBlockBytes+256)
	}
}

// TestExportCARBytes checks that ExportCAR writes, to a buffer and to a
// file (an io.WriterAt, which go-car writes its header to with WriteAt),
// the bytes go-car's own writer writes for the same blocks in the same
// order.
func TestExportCARBytes(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	dir := writeTree(t, map[string][]byte{"x": pattern("x", 3*ChunkSize+5), "y/z": []byte("z"), "e": nil})
	root, err := s.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	out, err := storage.NewWritable(&want, []cid.Cid{root}, car.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.walk(ctx, root, func(b blocks.Block) error {
		return out.Put(ctx, b.Cid().KeyString(), b.RawData())
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		get  func(t *testing.T) []byte
	}{
		{"buffer", func(t *testing.T) []byte {
			data, _ := exportBytes(t, s, root)
			return data
		}},
		{"file", func(t *testing.T) []byte {
			f, err := os.Create(filepath.Join(t.TempDir(), "out.car"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := s.ExportCAR(ctx, root, Selection{}, f); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			return data
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.get(t); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("export: %d bytes, differing from go-car's %d", len(got), want.Len())
			}
		})
	}
}
