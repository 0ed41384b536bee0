package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/boxo/datastore/dshelp"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	flatfs "github.com/ipfs/go-ds-flatfs"
)

// countBlocks returns the number of blocks in the store.
func countBlocks(t testing.TB, s *Store) int {
	t.Helper()
	keys, err := s.blocks.AllKeysChan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range keys {
		n++
	}
	return n
}

func TestAddTwiceStoresNothingNew(t *testing.T) {
	s := openStore(t)
	data := pattern("twice", 3*ChunkSize+5)
	c1 := addFile(t, s, data)
	n := countBlocks(t, s)
	if n != 5 { // 4 leaves and the root
		t.Fatalf("%d blocks after the first add, want 5", n)
	}
	c2 := addFile(t, s, data)
	if c1 != c2 || countBlocks(t, s) != n {
		t.Errorf("second add: %s with %d blocks, want %s with %d", c2, countBlocks(t, s), c1, n)
	}
}

func TestReadRange(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	data := pattern("range", 10*ChunkSize+100)
	c := addFile(t, s, data)
	tests := []struct {
		name   string
		r      Range
		blocks int // blocks an export of the range carries: root + leaves
	}{
		{"inside one chunk", Range{Offset: 3*ChunkSize + 10, Length: 1000}, 2},
		{"across a boundary", Range{Offset: 4*ChunkSize - 10, Length: 20}, 3},
		{"to the end", Range{Offset: 10 * ChunkSize}, 2},
		{"first byte", Range{Offset: 0, Length: 1}, 2},
		{"past the end", Range{Offset: uint64(len(data)) + 5, Length: 10}, 1},
		{"whole", Range{}, 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if _, err := s.ReadRange(ctx, c, tc.r, &buf); err != nil {
				t.Fatal(err)
			}
			lo := min(tc.r.Offset, uint64(len(data)))
			want := data[lo:tc.r.end(uint64(len(data)))]
			if lo >= tc.r.end(uint64(len(data))) {
				want = nil
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("got %d bytes, want %d", buf.Len(), len(want))
			}
			var car bytes.Buffer
			st, err := s.ExportCAR(ctx, c, Selection{Range: &tc.r}, &car)
			if err != nil {
				t.Fatal(err)
			}
			if st.Blocks != tc.blocks {
				t.Errorf("export carries %d blocks, want %d", st.Blocks, tc.blocks)
			}
		})
	}
}

func TestStatLsResolve(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	big := pattern("stat", 2*ChunkSize+1)
	dir := writeTree(t, map[string][]byte{"a": []byte("abc"), "d/big": big})
	root, err := s.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	// blocks: root dir, a, d, big root, 3 leaves
	if st.Type != TypeDirectory || st.Size != uint64(3+len(big)) || st.Blocks != 7 {
		t.Errorf("stat = %+v", st)
	}
	ls, err := s.Ls(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 || ls[0].Name != "a" || ls[0].Type != TypeFile || ls[0].Size != 3 || ls[1].Name != "d" || ls[1].Type != TypeDirectory {
		t.Errorf("ls = %+v", ls)
	}
	bc, err := s.Resolve(ctx, root, "/d/big")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Stat(ctx, bc); err != nil || st.Type != TypeFile || st.Size != uint64(len(big)) || st.Blocks != 4 {
		t.Errorf("stat d/big = %+v, %v", st, err)
	}
	if _, err := s.Resolve(ctx, root, "d/nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolve d/nope: %v, want ErrNotFound", err)
	}
	if _, err := s.Resolve(ctx, root, "a/x"); err == nil {
		t.Error("resolve through a file succeeded")
	}
	if _, err := s.Ls(ctx, bc); err == nil {
		t.Error("ls of a file succeeded")
	}
}

func TestPinsAndGC(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	kept := addFile(t, s, pattern("kept", 2*ChunkSize))
	gone := addFile(t, s, pattern("gone", 2*ChunkSize))
	partial := addFile(t, s, pattern("partial", 2*ChunkSize))
	if err := s.Pin(ctx, "keep", kept); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, "bad name!", kept); err == nil {
		t.Error("pin with a bad name succeeded")
	}
	if err := s.Pin(ctx, "missing", cid.MustParse("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")); !errors.Is(err, ErrNotFound) {
		t.Errorf("pin of a missing root: %v", err)
	}
	release := s.protect(partial) // as a transfer writing partial would
	res, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Removed != 3 || res.Kept != 6 {
		t.Errorf("gc = %+v, want 3 removed, 6 kept", res)
	}
	if ok, _ := s.Has(ctx, gone); ok {
		t.Error("unpinned root survived gc")
	}
	release()
	if res, err := s.GC(ctx); err != nil || res.Removed != 3 {
		t.Errorf("gc after the transfer ended = %+v, %v", res, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Pins survive a reopen.
	s, err = Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p := s.Pins(); len(p) != 1 || p[0].Name != "keep" || p[0].CID != kept.String() {
		t.Errorf("pins after reopen = %v", p)
	}
	if _, err := s.Cat(ctx, kept, &bytes.Buffer{}); err != nil {
		t.Errorf("pinned content after gc: %v", err)
	}
	if err := s.Unpin("keep"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin("keep"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second unpin: %v", err)
	}
	if res, err := s.GC(ctx); err != nil || res.Removed != 3 || res.Kept != 0 {
		t.Errorf("gc after unpin = %+v, %v", res, err)
	}
}

// TestBlockFilesLayout: blocks the store writes itself are where flatfs
// (and kubo) look for them, with sync or without, nothing is left in the
// temporary directory, and a block written twice is one file.
func TestBlockFilesLayout(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("no_sync=%v", noSync), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s, err := Open(dir, Options{NoSync: noSync})
			if err != nil {
				t.Fatal(err)
			}
			data := pattern("layout", 9*ChunkSize+7) // 3 batches of leaves
			root := addFile(t, s, data)
			again := addFile(t, s, data)
			if root != again {
				t.Fatalf("second add: %s, want %s", again, root)
			}
			_, order := exportBytes(t, s, root)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			ds, err := flatfs.Open(filepath.Join(dir, "blocks"), false)
			if err != nil {
				t.Fatal(err)
			}
			defer ds.Close()
			for _, c := range order {
				got, err := ds.Get(ctx, dshelp.MultihashToDsKey(c.Hash()))
				if err != nil {
					t.Fatalf("flatfs get %s: %v", c, err)
				}
				if sum, err := c.Prefix().Sum(got); err != nil || !sum.Equals(c) {
					t.Errorf("flatfs holds other bytes for %s", c)
				}
			}
			left, err := os.ReadDir(filepath.Join(dir, "blocks", ".temp"))
			if err != nil || len(left) != 0 {
				t.Errorf("temporary directory holds %d files (%v)", len(left), err)
			}
			var files int
			_ = filepath.WalkDir(filepath.Join(dir, "blocks"), func(p string, d os.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".data") {
					files++
				}
				return nil
			})
			if files != len(order) {
				t.Errorf("%d block files, want %d", files, len(order))
			}
		})
	}
}

// TestWriteAfterClose: a closed store writes no block, as flatfs refused
// to: the directory may belong to another process by then.
func TestWriteAfterClose(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddReader(context.Background(), bytes.NewReader([]byte("late")), AddOptions{}); err == nil {
		t.Fatal("add after close succeeded")
	}
	var files int
	_ = filepath.WalkDir(filepath.Join(dir, "blocks"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".data") {
			files++
		}
		return nil
	})
	if files != 0 {
		t.Errorf("%d block files after a closed store's add", files)
	}
}

// TestDiskUsageCountsBatchedWrites: flatfs's disk-usage estimate, kept in
// diskUsage.cache, counts the blocks the store writes itself, so it is the
// size of the block files after a close and stays at or above zero after
// they are deleted (below zero, flatfs recounts the store at its next open
// and prints to stdout while it does).
func TestDiskUsageCountsBatchedWrites(t *testing.T) {
	dir := t.TempDir()
	blocksDir := filepath.Join(dir, "blocks")
	sizeOfFiles := func() int64 {
		var n int64
		_ = filepath.WalkDir(blocksDir, func(p string, d os.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, ".data") {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		return n
	}
	s, err := Open(dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	addFile(t, s, pattern("du", 5*ChunkSize+3))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ds, err := flatfs.Open(blocksDir, false)
	if err != nil {
		t.Fatal(err)
	}
	du, err := ds.DiskUsage(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := sizeOfFiles(); du < uint64(want) {
		t.Errorf("disk usage %d after a close, want at least the %d bytes of block files", du, want)
	}
	// Delete every block through flatfs, as a GC does.
	res, err := ds.Query(context.Background(), query.Query{KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	for e := range res.Next() {
		if err := ds.Delete(context.Background(), datastore.NewKey(e.Key)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(blocksDir, flatfs.DiskUsageFile))
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		DiskUsage int64 `json:"diskUsage"`
	}
	if err := json.Unmarshal(data, &v); err != nil || v.DiskUsage < 0 {
		t.Errorf("disk usage after deleting every block: %s (%v), want at least 0", data, err)
	}
}

// TestBlockWriterBuffers checks the writer's buffers: a block of less
// than half a buffer gets a slice of its own size (a batch of 4 MiB of
// small blocks must not hold a 257 KiB buffer each), a chunk-sized one a
// recycled buffer once a written block gave one back.
func TestBlockWriterBuffers(t *testing.T) {
	w := newBlockWriter(context.Background(), openStore(t), false)
	t.Cleanup(func() { _ = w.close() })
	tests := []struct {
		name    string
		n       int
		wantCap int
	}{
		{"small block", 100, 100},
		{"just under half", bufCap/2 - 1, bufCap/2 - 1},
		{"chunk", ChunkSize, bufCap},
		{"section of a chunk", ChunkSize + 40, bufCap},
		{"over a buffer", bufCap + 1, bufCap + 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := w.getBuf(tc.n)
			if len(b) != tc.n || cap(b) != tc.wantCap {
				t.Errorf("getBuf(%d): len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.wantCap)
			}
		})
	}
	// A released buffer comes back, whatever length was asked.
	b := w.getBuf(ChunkSize)
	w.release(b)
	if again := w.getBuf(ChunkSize + 1); &again[0] != &b[0] {
		t.Error("getBuf did not reuse the released buffer")
	}
}
