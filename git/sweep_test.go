package git_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"

	"github.com/alkdev/alknet/git"
)

func TestSweepTemp(t *testing.T) {
	root := t.TempDir()
	start := time.Now()
	old := start.Add(-time.Hour)
	for _, name := range []string{"a.git", "owner/b.git"} {
		if _, err := gogit.PlainInit(filepath.Join(root, name), true); err != nil {
			t.Fatal(err)
		}
	}
	type entry struct {
		path  string // below root
		dir   bool
		mtime time.Time
		keep  bool
	}
	entries := []entry{
		{path: "a.git/objects/pack/tmp_pack_123456", mtime: old},                // go-git or index-pack
		{path: "a.git/objects/pack/tmp_idx_abcdef", mtime: old},                 // index-pack
		{path: "a.git/objects/pack/tmp_obj_xyz", mtime: old},                    // go-git loose object
		{path: "a.git/objects/pack/.tmp-4242-pack-0011.pack", mtime: old},       // repack
		{path: "a.git/objects/ab/tmp_obj_Q1w2E3", mtime: old},                   // git loose object
		{path: "a.git/objects/tmp_obj_Q1w2E3", mtime: old},                      // git loose object
		{path: "a.git/objects/tmp_objdir-incoming-Zx81", dir: true, mtime: old}, // quarantine
		{path: "owner/b.git/objects/incoming-Zx81", dir: true, mtime: old},      // old git's quarantine
		{path: "owner/b.git/._packed-refs1234", mtime: old},                     // go-git packed-refs
		{path: "a.git/objects/pack/tmp_pack_live", mtime: start.Add(time.Minute), keep: true},
		{path: "a.git/objects/pack/pack-0011.pack", mtime: old, keep: true},
		{path: "a.git/objects/ab/cdef0123", mtime: old, keep: true},
		{path: "a.git/refs/heads/main.lock", mtime: old, keep: true},
		{path: "a.git/packed-refs", mtime: old, keep: true},
		{path: "a.git/objects/info/tmp_pack_x", mtime: old, keep: true}, // not where packs are written
		{path: "a.git/tmp_pack_x", mtime: old, keep: true},
		{path: "notrepo/objects/pack/tmp_pack_x", mtime: old, keep: true}, // outside any repository
	}
	for _, e := range entries {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		if e.dir {
			if err := os.MkdirAll(filepath.Join(p, "pack"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(p, "pack", "tmp_pack_1"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(p, e.mtime, e.mtime); err != nil {
			t.Fatal(err)
		}
	}

	n, err := git.SweepTemp(root, start)
	if err != nil {
		t.Fatalf("SweepTemp: %v", err)
	}
	want := 0
	for _, e := range entries {
		_, err := os.Lstat(filepath.Join(root, filepath.FromSlash(e.path)))
		switch {
		case e.keep && err != nil:
			t.Errorf("%s: removed, want kept (%v)", e.path, err)
		case !e.keep && err == nil:
			t.Errorf("%s: kept, want removed", e.path)
		}
		if !e.keep {
			want++
		}
	}
	if n != want {
		t.Errorf("SweepTemp removed %d, want %d", n, want)
	}
	for _, name := range []string{"a.git", "owner/b.git"} {
		if _, err := gogit.PlainOpen(filepath.Join(root, name)); err != nil {
			t.Errorf("%s after the sweep: %v", name, err)
		}
	}
}

func TestSweepTempMissingRoot(t *testing.T) {
	n, err := git.SweepTemp(filepath.Join(t.TempDir(), "none"), time.Now())
	if n != 0 || err != nil {
		t.Fatalf("SweepTemp(missing) = %d, %v; want 0, nil", n, err)
	}
}
