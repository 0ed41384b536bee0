package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestServeSweepsCrashLeftovers starts a node on a data dir holding what a
// kill -9 during an SFTP upload and a git push leaves, and checks the node
// removes it and says so, keeping everything else.
func TestServeSweepsCrashLeftovers(t *testing.T) {
	dir := t.TempDir()
	repo := filepath.Join(dir, "git", "team", "app.git")
	old := time.Now().Add(-time.Hour)
	files := []struct {
		path string
		gone bool
	}{
		{filepath.Join(dir, "sftp", "alice", "docs", ".report.pdf.upload-0123456789abcdef.part"), true},
		{filepath.Join(dir, "sftp", "alice", "docs", "report.pdf"), false},
		{filepath.Join(repo, "HEAD"), false},
		{filepath.Join(repo, "objects", "pack", "tmp_pack_Ab12Cd"), true},
		{filepath.Join(repo, "objects", "tmp_objdir-incoming-Ab12Cd", "pack", "tmp_pack_x"), true},
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f.path, []byte("ref: refs/heads/main\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.path, old, old); err != nil {
			t.Fatal(err)
		}
	}
	n := startNodeIn(t, dir, "")
	n.waitLog(t, `msg="sftp: removed interrupted uploads" count=1`)
	n.waitLog(t, `msg="git: removed temporary files of interrupted pushes" count=2`)
	for _, f := range files {
		_, err := os.Stat(f.path)
		if gone := os.IsNotExist(err); gone != f.gone {
			t.Errorf("%s: gone %v, want %v (%v)", f.path, gone, f.gone, err)
		}
	}
}
