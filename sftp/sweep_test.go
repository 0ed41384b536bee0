package sftp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSweepPartials(t *testing.T) {
	root := t.TempDir()
	start := time.Now()
	old := start.Add(-time.Hour)
	const rnd = "0123456789abcdef"
	type file struct {
		name  string
		mtime time.Time
		keep  bool
	}
	files := []file{
		{name: tempName("a.txt", rnd), mtime: old},                                // crash leftover
		{name: tempName("alice/deep/b.bin", rnd), mtime: old},                     // in a subdirectory
		{name: tempName(strings.Repeat("x", 250), rnd), mtime: old},               // shortened target name
		{name: tempName("c.txt", rnd), mtime: start.Add(time.Minute), keep: true}, // written after start: live
		{name: "a.part", mtime: old, keep: true},                                  // a user's file
		{name: ".a.upload-0123456789ABCDEF.part", mtime: old, keep: true},         // not our hex
		{name: ".a.upload-0123.part", mtime: old, keep: true},                     // too short
		{name: "a.upload-0123456789abcdef.part", mtime: old, keep: true},          // not hidden
		{name: ".upload-0123456789abcdef.part", mtime: old, keep: true},           // no target
		{name: ".a.upload-0123456789abcdef.part.txt", mtime: old, keep: true},     // other suffix
		{name: "bob/.a.upload-0123456789abcdeg.part", mtime: old, keep: true},     // not hex
	}
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.mtime, f.mtime); err != nil {
			t.Fatal(err)
		}
	}
	// A directory and a symbolic link of the naming are not ours to remove,
	// nor what the link points at.
	dirLike := filepath.Join(root, tempName("d", rnd))
	if err := os.Mkdir(dirLike, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "target")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(root, tempName("l", rnd))
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dirLike, target} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}

	n, err := SweepPartials(root, start)
	if err != nil {
		t.Fatalf("SweepPartials: %v", err)
	}
	want := 0
	for _, f := range files {
		_, err := os.Lstat(filepath.Join(root, filepath.FromSlash(f.name)))
		switch {
		case f.keep && err != nil:
			t.Errorf("%s: removed, want kept (%v)", f.name, err)
		case !f.keep && err == nil:
			t.Errorf("%s: kept, want removed", f.name)
		}
		if !f.keep {
			want++
		}
	}
	if n != want {
		t.Errorf("SweepPartials removed %d, want %d", n, want)
	}
	for _, p := range []string{dirLike, link, target} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s: %v, want kept", p, err)
		}
	}
}

func TestSweepPartialsMissingRoot(t *testing.T) {
	n, err := SweepPartials(filepath.Join(t.TempDir(), "none"), time.Now())
	if n != 0 || err != nil {
		t.Fatalf("SweepPartials(missing) = %d, %v; want 0, nil", n, err)
	}
}
