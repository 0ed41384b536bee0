package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// emptyFileCID is what `ipfs add --cid-version 1` gives an empty file.
const emptyFileCID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"

// fsTree writes a small tree to a new directory: a.txt, sub/big (three
// chunks and a bit) and sub/empty, and returns its path and big's bytes.
func fsTree(t *testing.T) (string, []byte) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "site")
	big := make([]byte, 3<<20+123)
	r := rand.NewChaCha8([32]byte{6})
	_, _ = r.Read(big)
	for name, data := range map[string][]byte{"a.txt": []byte("hello fs\n"), "sub/big": big, "sub/empty": nil} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, big
}

// sameTree fails unless directories a and b hold the same files.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	err := filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		want, _ := os.ReadFile(p)
		got, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: differs (%v)", rel, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// addQ adds paths to the store of data dir dir and returns the CIDs.
func addQ(t *testing.T, dir string, args ...string) []string {
	t.Helper()
	return strings.Fields(run(t, "", append([]string{"fs", "add", "-q", "--data-dir", dir}, args...)...))
}

func TestFSCommandsLocal(t *testing.T) {
	tree, big := fsTree(t)
	dir, _ := clientID(t)
	cids := addQ(t, dir, filepath.Join(tree, "sub", "empty"), tree)
	if cids[0] != emptyFileCID {
		t.Errorf("empty file: CID %s, want %s", cids[0], emptyFileCID)
	}
	root := cids[1]
	if again := addQ(t, dir, tree); again[0] != root {
		t.Errorf("adding again gave %s, then %s", root, again[0])
	}

	if out := run(t, "", "fs", "cat", "--data-dir", dir, root+"/a.txt"); out != "hello fs\n" {
		t.Errorf("cat a.txt: %q", out)
	}
	// A range across the first chunk boundary, and one to the end.
	if out := run(t, "", "fs", "cat", "--data-dir", dir, "--range", "262140-262149", "/ipfs/"+root+"/sub/big"); out != string(big[262140:262150]) {
		t.Errorf("cat --range 262140-262149: %q", out)
	}
	if out := run(t, "", "fs", "cat", "--data-dir", dir, "--range", fmt.Sprint(len(big)-5, "-"), root+"/sub/big"); out != string(big[len(big)-5:]) {
		t.Errorf("cat --range to the end: %q", out)
	}
	if _, stderr, err := runErr(t, "", "fs", "cat", "--data-dir", dir, "--range", "9-3", root+"/a.txt"); err == nil || !strings.Contains(stderr, "A <= B") {
		t.Errorf("bad range: %v %q", err, stderr)
	}
	ls := run(t, "", "fs", "ls", "--data-dir", dir, root)
	if !strings.Contains(ls, " a.txt\n") || !strings.Contains(ls, " sub/\n") {
		t.Errorf("ls:\n%s", ls)
	}
	if st := run(t, "", "fs", "stat", "--data-dir", dir, root+"/sub/big"); !strings.Contains(st, fmt.Sprintf("size\t%d\n", len(big))) || !strings.Contains(st, "type\tfile\n") {
		t.Errorf("stat:\n%s", st)
	}

	out := filepath.Join(t.TempDir(), "copy")
	run(t, "", "fs", "get", "--data-dir", dir, root, "-o", out)
	sameTree(t, tree, out)
	if _, stderr, err := runErr(t, "", "fs", "get", "--data-dir", dir, root, "-o", out); err == nil || !strings.Contains(stderr, "exists") {
		t.Errorf("get over an existing path: %v %q", err, stderr)
	}

	// Export, import into another data dir: same CID, same bytes.
	car := filepath.Join(t.TempDir(), "site.car")
	run(t, "", "fs", "export", "--data-dir", dir, root, "-o", car)
	other, _ := clientID(t)
	if imp := run(t, "", "fs", "import", "--data-dir", other, car); imp != "imported "+root+"\n" {
		t.Errorf("import printed %q", imp)
	}
	if out := run(t, "", "fs", "cat", "--data-dir", other, root+"/sub/big"); out != string(big) {
		t.Error("cat after import differs")
	}

	// Pins: add pins under the CID; gc keeps pinned content only.
	pins := run(t, "", "fs", "pins", "--data-dir", dir)
	if !strings.Contains(pins, root) || !strings.Contains(pins, emptyFileCID) {
		t.Errorf("pins:\n%s", pins)
	}
	loose := filepath.Join(t.TempDir(), "loose")
	writeFile(t, loose, "not pinned\n")
	lc := strings.Fields(run(t, "", "fs", "add", "-q", "--no-pin", "--data-dir", dir, loose))[0]
	if gc := run(t, "", "fs", "gc", "--data-dir", dir); !strings.HasPrefix(gc, "removed 1 blocks") {
		t.Errorf("gc: %q", gc)
	}
	if _, _, err := runErr(t, "", "fs", "cat", "--data-dir", dir, lc); err == nil {
		t.Error("unpinned content survived gc")
	}
	run(t, "", "fs", "pin", "--data-dir", dir, root, "site")
	run(t, "", "fs", "unpin", "--data-dir", dir, root)
	run(t, "", "fs", "unpin", "--data-dir", dir, emptyFileCID)
	if gc := run(t, "", "fs", "gc", "--data-dir", dir); !strings.HasPrefix(gc, "removed 0 blocks") {
		t.Errorf("gc with the tree pinned as site: %q", gc)
	}
	if out := run(t, "", "fs", "cat", "--data-dir", dir, root+"/a.txt"); out != "hello fs\n" {
		t.Errorf("content pinned as site lost: %q", out)
	}
	run(t, "", "fs", "unpin", "--data-dir", dir, "site")
	if gc := run(t, "", "fs", "gc", "--data-dir", dir); !strings.HasSuffix(gc, "kept 0\n") {
		t.Errorf("gc with nothing pinned: %q", gc)
	}
}

func TestFSCommandsWithNode(t *testing.T) {
	tree, big := fsTree(t)
	writer, writerID := clientID(t)
	reader, readerID := clientID(t)
	stranger, _ := clientID(t)
	cfg := fmt.Sprintf("[[peers]]\nid = \"writer\"\nkeys = [%q]\nscopes = [\"fs:read\", \"fs:write\", \"admin\"]\n"+
		"[[peers]]\nid = \"reader\"\nkeys = [%q]\nscopes = [\"fs:read\"]\n", writerID, readerID)
	n := startNode(t, cfg)

	// While the node runs, its store is locked to it: fs commands on its
	// data dir reach it through its control socket.
	if _, stderr, err := runErr(t, "", "fs", "pins", "--data-dir", n.dir); err != nil {
		t.Errorf("fs pins beside a running node: %v %q", err, stderr)
	}

	root := addQ(t, writer, tree)[0]
	// stderr is not a terminal here: no progress, no summary line.
	if _, stderr, err := runErr(t, "", "fs", "push", "--data-dir", writer, root, "--to", n.addr, "--pin", "site"); err != nil || stderr != "" {
		t.Errorf("fs push: %v, stderr %q (want quiet)", err, stderr)
	}
	if pins := run(t, "", "fs", "pins", "--data-dir", reader, "--node", n.addr); !strings.Contains(pins, "site") || !strings.Contains(pins, root) {
		t.Errorf("pins on the node:\n%s", pins)
	}
	out := filepath.Join(t.TempDir(), "copy")
	if _, stderr, err := runErr(t, "", "fs", "get", "--data-dir", reader, "--node", n.addr, root, "-o", out); err != nil || stderr != "" {
		t.Errorf("fs get --node: %v, stderr %q (want quiet)", err, stderr)
	}
	sameTree(t, tree, out)
	if got := run(t, "", "fs", "cat", "--data-dir", reader, "--node", n.addr, "--range", "1000000-1000099", root+"/sub/big"); got != string(big[1000000:1000100]) {
		t.Errorf("cat --range over alknet/fs: %d bytes", len(got))
	}
	// A file is written while it arrives; the store keeps its blocks.
	bigOut := filepath.Join(t.TempDir(), "big")
	if _, stderr, err := runErr(t, "", "fs", "get", "--data-dir", reader, "--node", n.addr, root+"/sub/big", "-o", bigOut); err != nil || stderr != "" {
		t.Errorf("fs get --node of a file: %v, stderr %q", err, stderr)
	}
	if got, err := os.ReadFile(bigOut); err != nil || !bytes.Equal(got, big) {
		t.Errorf("fs get --node of a file wrote %d bytes (%v), want %d", len(got), err, len(big))
	}
	if _, _, err := runErr(t, "", "fs", "get", "--data-dir", reader, "--node", n.addr, root+"/sub/big", "-o", bigOut); err == nil {
		t.Error("fs get --node over an existing file succeeded")
	}
	emptyOut := filepath.Join(t.TempDir(), "empty")
	run(t, "", "fs", "get", "--data-dir", reader, "--node", n.addr, root+"/sub/empty", "-o", emptyOut)
	if fi, err := os.Stat(emptyOut); err != nil || fi.Size() != 0 {
		t.Errorf("fs get --node of an empty file: %v", err)
	}
	if ls := run(t, "", "fs", "ls", "--data-dir", reader, "--node", n.addr, root+"/sub"); !strings.Contains(ls, " big\n") {
		t.Errorf("ls on the node:\n%s", ls)
	}

	// add and import straight to the node; export back from it.
	loose := filepath.Join(t.TempDir(), "loose")
	writeFile(t, loose, "straight to the node\n")
	lc := addQ(t, writer, "--node", n.addr, loose)[0]
	if got := run(t, "", "fs", "cat", "--data-dir", reader, "--node", n.addr, lc); got != "straight to the node\n" {
		t.Errorf("cat of content added with --node: %q", got)
	}
	car := filepath.Join(t.TempDir(), "site.car")
	run(t, "", "fs", "export", "--data-dir", reader, "--node", n.addr, root, "-o", car)
	run(t, "", "fs", "unpin", "--data-dir", writer, "--node", n.addr, "site")
	if imp := run(t, "", "fs", "import", "--data-dir", writer, "--node", n.addr, "--pin", "again", car); imp != "imported "+root+"\n" {
		t.Errorf("import --node printed %q", imp)
	}
	if gc := run(t, "", "fs", "gc", "--data-dir", writer, "--node", n.addr); !strings.HasPrefix(gc, "removed 0 blocks") {
		t.Errorf("gc on the node: %q", gc)
	}

	// Without the scopes the node refuses.
	for _, tc := range []struct {
		dir  string
		args []string
	}{
		{stranger, []string{"get", root, "-o", filepath.Join(t.TempDir(), "x")}},
		{stranger, []string{"ls", root}},
		{reader, []string{"pin", root}},
		{reader, []string{"gc"}},
		{reader, []string{"add", loose}},
	} {
		args := append([]string{"fs", tc.args[0], "--data-dir", tc.dir, "--node", n.addr}, tc.args[1:]...)
		if _, stderr, err := runErr(t, "", args...); err == nil || !strings.Contains(stderr, "does not know your key") && !strings.Contains(stderr, "lacks the scope") {
			t.Errorf("%v: %v %q, want the refusal in words", tc.args, err, stderr)
		}
	}

	// fs.public, reloaded, lets anyone read.
	writeFile(t, filepath.Join(n.dir, "alknet.toml"), cfg+"[fs]\npublic = true\n")
	n.waitLog(t, "config reloaded")
	if got := run(t, "", "fs", "cat", "--data-dir", stranger, "--node", n.addr, root+"/a.txt"); got != "hello fs\n" {
		t.Errorf("public cat: %q", got)
	}
}

// TestFSOverTCP checks add, push, get and cat with --node over TCP+TLS,
// where each request after the first needs a connection of its own.
func TestFSOverTCP(t *testing.T) {
	tree, big := fsTree(t)
	writer, writerID := clientID(t)
	reader, readerID := clientID(t) // a store of its own: every block comes over the wire
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"writer\"\nkeys = [%q]\nscopes = [\"fs:read\", \"fs:write\"]\n"+
		"[[peers]]\nid = \"reader\"\nkeys = [%q]\nscopes = [\"fs:read\"]\n", writerID, readerID))
	root := addQ(t, writer, tree)[0]
	if _, stderr, err := runErr(t, "", "fs", "push", "--network", "tcp", "--data-dir", writer, root, "--to", n.addr); err != nil {
		t.Fatalf("fs push over tcp: %v %q", err, stderr)
	}
	loose := filepath.Join(t.TempDir(), "loose")
	writeFile(t, loose, string(big[:300000]))
	lc := addQ(t, writer, "--network", "tcp", "--node", n.addr, loose)[0]
	out := filepath.Join(t.TempDir(), "copy")
	if _, stderr, err := runErr(t, "", "fs", "get", "--network", "tcp", "--data-dir", reader, "--node", n.addr, root, "-o", out); err != nil {
		t.Fatalf("fs get over tcp: %v %q", err, stderr)
	}
	sameTree(t, tree, out)
	if got := run(t, "", "fs", "cat", "--network", "tcp", "--data-dir", reader, "--node", n.addr, lc); got != string(big[:300000]) {
		t.Errorf("cat over tcp of content added over tcp: %d bytes", len(got))
	}
}
