package fs

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// link is a directory entry of a hand-built DAG.
type link struct {
	name string
	cid  cid.Cid
}

// rawDir stores a UnixFS directory with exactly these links, whatever
// their names: what a hostile peer can send.
func rawDir(t testing.TB, s *Store, links ...link) cid.Cid {
	t.Helper()
	nd := merkledag.NodeWithData(ft.FolderPBData())
	if err := nd.SetCidBuilder(cidBuilder); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if err := nd.AddRawLink(l.name, &ipld.Link{Cid: l.cid}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.dag.Add(context.Background(), nd); err != nil {
		t.Fatal(err)
	}
	return nd.Cid()
}

// listTree returns every path below dir (slash-separated) with its content
// ("" for a directory, "->" for a symlink).
func listTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			out[filepath.ToSlash(rel)] = "->"
		case d.IsDir():
			out[filepath.ToSlash(rel)] = ""
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExportTree: a tree added then exported is the same tree, but for
// its symlink, which is reported and not written.
func TestExportTree(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	big := string(pattern("big", 2*ChunkSize+7))
	src := writeTree(t, map[string][]byte{"a.txt": []byte("a"), "sub/b.txt": []byte("b"), "sub/deeper/big": []byte(big)})
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "sub", "link")); err != nil {
		t.Fatal(err)
	}
	root, err := s.Add(ctx, src, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	var skipped []string
	err = s.Export(ctx, root, dst, ExportOptions{Skipped: func(p, typ string) { skipped = append(skipped, typ+" "+p) }})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a.txt": "a", "sub": "", "sub/b.txt": "b", "sub/deeper": "", "sub/deeper/big": big}
	got := listTree(t, dst)
	if len(got) != len(want) {
		t.Errorf("exported %d paths, want %d", len(got), len(want))
	}
	for p, c := range want {
		if g, ok := got[p]; !ok || g != c {
			t.Errorf("%s: present %v, content %d bytes, want %d", p, ok, len(g), len(c))
		}
	}
	if w := "symlink " + filepath.Join(dst, "sub", "link"); len(skipped) != 1 || skipped[0] != w {
		t.Errorf("skipped %q, want [%q]", skipped, w)
	}

	file := addFile(t, s, []byte("just a file"))
	out := filepath.Join(t.TempDir(), "f")
	if err := s.Export(ctx, file, out, ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "just a file" {
		t.Fatalf("file root: %q, %v", b, err)
	}
}

// TestExportRefuses: hostile names, duplicates, an existing destination
// and DAGs past the bounds are errors, and nothing is written outside the
// destination.
func TestExportRefuses(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	f := addFile(t, s, []byte("payload"))
	leaf := rawDir(t, s, link{"x", f})
	chain := leaf
	for range 5 {
		chain = rawDir(t, s, link{"d", chain})
	}
	diamond := leaf
	for range 6 { // 2^6 paths to one leaf from a DAG of 7 directories
		diamond = rawDir(t, s, link{"l", diamond}, link{"r", diamond})
	}
	tests := []struct {
		name   string
		root   cid.Cid
		opts   ExportOptions
		exists bool // dst is a symlink to a directory outside
		want   error
	}{
		{name: "dot dot", root: rawDir(t, s, link{"..", f})},
		{name: "dot", root: rawDir(t, s, link{".", f})},
		{name: "empty", root: rawDir(t, s, link{"", f})},
		{name: "climbs", root: rawDir(t, s, link{"../escaped", f})},
		{name: "absolute", root: rawDir(t, s, link{"/tmp/escaped", f})},
		{name: "separator", root: rawDir(t, s, link{"a/b", f})},
		{name: "NUL", root: rawDir(t, s, link{"a\x00b", f})},
		{name: "deep hostile name", root: rawDir(t, s, link{"ok", rawDir(t, s, link{"../../escaped", f})})},
		{name: "duplicate", root: rawDir(t, s, link{"same", f}, link{"same", f})},
		{name: "destination is a symlink", root: leaf, exists: true, want: os.ErrExist},
		{name: "too deep", root: chain, opts: ExportOptions{MaxDepth: 4}, want: ErrExportLimit},
		{name: "too many entries", root: diamond, opts: ExportOptions{MaxEntries: 100}, want: ErrExportLimit},
		{name: "too many bytes", root: diamond, opts: ExportOptions{MaxBytes: 20 * int64(len("payload"))}, want: ErrExportLimit},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			outside := t.TempDir()
			dst := filepath.Join(parent, "out")
			if tc.exists {
				if err := os.Symlink(outside, dst); err != nil {
					t.Fatal(err)
				}
			}
			err := s.Export(ctx, tc.root, dst, tc.opts)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("export: %v, want an error matching %v", err, tc.want)
			}
			if got := listTree(t, outside); len(got) != 0 {
				t.Errorf("written outside the destination: %v", got)
			}
			for p := range listTree(t, parent) {
				if p != "out" && !strings.HasPrefix(p, "out/") {
					t.Errorf("written beside the destination: %s", p)
				}
			}
		})
	}
	// Within the bounds, the same DAGs export.
	if err := s.Export(ctx, chain, filepath.Join(t.TempDir(), "out"), ExportOptions{MaxDepth: 5}); err != nil {
		t.Errorf("chain of depth 5 with MaxDepth 5: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if err := s.Export(ctx, diamond, dst, ExportOptions{}); err != nil {
		t.Fatalf("diamond: %v", err)
	}
	if got := len(listTree(t, dst)); got != (1<<7-2)+1<<6 { // 126 directories, 64 files
		t.Errorf("diamond: %d paths", got)
	}
}

// FuzzExport builds a directory from fuzzed names (split at ';'), each
// linking to a file or to a subdirectory holding the same names one level
// down, and exports it: an error or a tree, never a path outside the
// destination or a name the DAG did not have.
func FuzzExport(f *testing.F) {
	f.Add("a;b;c", uint8(0))
	f.Add("../x;ok", uint8(1))
	f.Add("/abs;a/b;a\x00b", uint8(2))
	f.Add("dup;dup", uint8(0))
	f.Add(".;..;", uint8(3))
	f.Add("x\\y;\xff\xfe", uint8(1))
	s := openStore(f)
	file := addFile(f, s, []byte("fuzz"))
	f.Fuzz(func(t *testing.T, spec string, dirs uint8) {
		names := strings.Split(spec, ";")
		if len(names) > 16 {
			names = names[:16]
		}
		links := func(sub cid.Cid, dirMask uint8) []link {
			var ls []link
			for i, n := range names {
				c := file
				if dirMask&(1<<(i%8)) != 0 && sub.Defined() {
					c = sub
				}
				ls = append(ls, link{n, c})
			}
			return ls
		}
		sub := rawDir(t, s, links(cid.Undef, 0)...)
		root := rawDir(t, s, links(sub, dirs)...)
		parent := t.TempDir()
		dst := filepath.Join(parent, "out")
		err := s.Export(context.Background(), root, dst, ExportOptions{MaxEntries: 64})
		valid := map[string]bool{}
		for _, n := range names {
			valid[n] = true
		}
		for p, content := range listTree(t, parent) {
			if p == "out" {
				continue
			}
			rel, ok := strings.CutPrefix(p, "out/")
			if !ok {
				t.Fatalf("written beside the destination: %q", p)
			}
			for _, el := range strings.Split(rel, "/") {
				if !valid[el] {
					t.Fatalf("wrote %q: %q is not a name of the DAG", p, el)
				}
			}
			if content == "->" {
				t.Fatalf("wrote a symlink %q", p)
			}
		}
		seen, entries := map[string]bool{}, 1+len(names)
		for i, n := range names {
			if dirs&(1<<(i%8)) != 0 {
				entries += len(names)
			}
			if n == "" || n == "." || n == ".." || len(n) > maxNameBytes ||
				strings.ContainsAny(n, "/\x00") || seen[n] {
				return // an error is right; checked above that it wrote nothing wrong
			}
			seen[n] = true
		}
		if entries <= 64 && err != nil {
			t.Fatalf("plain names %q, %d entries: %v", names, entries, err)
		}
	})
}

// TestStatDiamond: Stat of a DAG that names one subtree 2^80 times along
// its paths sums each directory once (it used to walk every path) and
// saturates instead of wrapping.
func TestStatDiamond(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	f := addFile(t, s, []byte("payload"))
	diamond := rawDir(t, s, link{"x", f})
	for range 80 {
		diamond = rawDir(t, s, link{"l", diamond}, link{"r", diamond})
	}
	done := make(chan struct{})
	var st Stat
	var err error
	go func() {
		defer close(done)
		st, err = s.Stat(ctx, diamond)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stat of an 81-block diamond still running after 10s")
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != math.MaxUint64 || st.Blocks != 82 {
		t.Errorf("stat = %+v, want a saturated size and 82 blocks", st)
	}
}
