package sftp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"
	"github.com/quic-go/quic-go"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/sftp"
)

func TestNewValidatesConfig(t *testing.T) {
	abs := t.TempDir()
	tests := []struct {
		name string
		cfg  sftp.Config
		want []string // substrings of the error; none: valid
	}{
		{"root", sftp.Config{Root: abs}, nil},
		{"roots only", sftp.Config{Roots: map[string]string{"alice": abs}}, nil},
		{"scoped access", sftp.Config{Root: abs, Access: core.AccessControl{AnyScopes: []string{"sftp:*"}}}, nil},
		{"empty", sftp.Config{}, []string{"Root: a base directory"}},
		{"relative root", sftp.Config{Root: "data/sftp"}, []string{`Root: "data/sftp" is not an absolute path`}},
		{"relative roots entry", sftp.Config{Root: abs, Roots: map[string]string{"bob": "bob"}}, []string{`Roots["bob"]`}},
		{"empty roots id", sftp.Config{Roots: map[string]string{"": abs}}, []string{"Roots: empty identity id"}},
		{"public", sftp.Config{Root: abs, Access: core.AccessControl{Public: true}}, []string{"Access.Public"}},
		{"bad scope", sftp.Config{Root: abs, Access: core.AccessControl{AllScopes: []string{"a b"}}}, []string{`invalid scope "a b"`}},
		{"negative handles", sftp.Config{Root: abs, MaxHandles: -1}, []string{"MaxHandles: -1 out of range"}},
		{"limits", sftp.Config{Root: abs, MaxHandles: 10, MaxHandlesPerIdentity: 20, MaxHandlesPerNode: 30,
			MaxSessionsPerConn: 2, MaxSessionsPerIdentity: 2}, nil},
		{"limits out of range", sftp.Config{Root: abs, MaxHandlesPerIdentity: -1, MaxHandlesPerNode: 1 << 25,
			MaxSessionsPerConn: -1, MaxSessionsPerIdentity: -5}, []string{
			"MaxHandlesPerIdentity: -1", "MaxHandlesPerNode: 33554432", "MaxSessionsPerConn: -1", "MaxSessionsPerIdentity: -5"}},
		{"session handles over identity's", sftp.Config{Root: abs, MaxHandles: 30, MaxHandlesPerIdentity: 20},
			[]string{"MaxHandles: 30 exceeds MaxHandlesPerIdentity 20"}},
		{"identity handles over node's", sftp.Config{Root: abs, MaxHandlesPerIdentity: 30, MaxHandlesPerNode: 20},
			[]string{"MaxHandlesPerIdentity: 30 exceeds MaxHandlesPerNode 20"}},
		{"session handles over node's", sftp.Config{Root: abs, MaxHandles: 30, MaxHandlesPerNode: 20},
			[]string{"MaxHandles: 30 exceeds MaxHandlesPerNode 20"}},
		{"connection sessions over identity's", sftp.Config{Root: abs, MaxSessionsPerConn: 5, MaxSessionsPerIdentity: 4},
			[]string{"MaxSessionsPerConn: 5 exceeds MaxSessionsPerIdentity 4"}},
		{"all at once", sftp.Config{Root: "x", MaxHandles: -2, Access: core.AccessControl{Public: true}},
			[]string{"Root:", "MaxHandles:", "Access.Public"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sftp.New(tc.cfg)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("New: %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want error with %q", tc.want)
			}
			if !strings.HasPrefix(err.Error(), "sftp: config: ") {
				t.Errorf("error %q lacks the sftp: config: prefix", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestALPN(t *testing.T) {
	srv, err := sftp.New(sftp.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.ALPNs(); !slices.Equal(got, []string{"alknet/sftp"}) {
		t.Fatalf("ALPNs() = %q, want [alknet/sftp]", got)
	}
}

// TestOperations runs every operation a client uses, over QUIC and
// TCP+TLS, and checks both what the client sees and what is on disk.
func TestOperations(t *testing.T) {
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			f := start(t, sftp.Config{}, core.Limits{}, peer{"alice", rw})
			c, _ := f.client(t, network, "alice")
			disk := f.root("alice")
			steps := []struct {
				name string
				run  func() error
			}{
				{"getwd is the root", func() error { return want(c.Getwd())("/") }},
				{"mkdir", func() error { return c.Mkdir("/d") }},
				{"mkdir existing fails", func() error { return wantCode(c.Mkdir("/d"), fxFailure) }},
				{"put", func() error {
					writeFile(t, c, "/d/a", []byte("hello"))
					return wantDisk(filepath.Join(disk, "d", "a"), "hello")
				}},
				{"put relative to the root", func() error {
					writeFile(t, c, "rel", []byte("r"))
					return wantDisk(filepath.Join(disk, "rel"), "r")
				}},
				{"get", func() error { return wantBytes(readFile(c, "/d/a"))("hello") }},
				{"stat", func() error {
					fi, err := c.Stat("/d/a")
					if err != nil {
						return err
					}
					if fi.Size() != 5 || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
						return errorf("stat: size %d mode %v, want 5 -rw-r--r--", fi.Size(), fi.Mode())
					}
					return nil
				}},
				{"ls", func() error { return wantNames(c.ReadDir("/d"))("a") }},
				{"ls root", func() error { return wantNames(c.ReadDir("/"))("d", "rel") }},
				{"overwrite keeps mode", func() error {
					if err := os.Chmod(filepath.Join(disk, "d", "a"), 0o600); err != nil {
						return err
					}
					writeFile(t, c, "/d/a", []byte("hello, again"))
					fi, err := os.Stat(filepath.Join(disk, "d", "a"))
					if err != nil {
						return err
					}
					if fi.Mode().Perm() != 0o600 {
						return errorf("mode after overwrite %v, want 0600", fi.Mode())
					}
					return wantDisk(filepath.Join(disk, "d", "a"), "hello, again")
				}},
				{"rename", func() error {
					if err := c.Rename("/d/a", "/d/b"); err != nil {
						return err
					}
					return wantNames(c.ReadDir("/d"))("b")
				}},
				{"rename onto existing fails", func() error {
					writeFile(t, c, "/d/c", []byte("c"))
					return wantCode(c.Rename("/d/b", "/d/c"), fxFailure)
				}},
				{"posix-rename replaces", func() error {
					if err := c.PosixRename("/d/c", "/d/b"); err != nil {
						return err
					}
					return wantBytes(readFile(c, "/d/b"))("c")
				}},
				{"append keeps content", func() error {
					fh, err := c.OpenFile("/d/b", os.O_WRONLY|os.O_APPEND)
					if err != nil {
						return err
					}
					if _, err := fh.WriteAt([]byte("++"), 1); err != nil {
						return err
					}
					if err := fh.Close(); err != nil {
						return err
					}
					return wantDisk(filepath.Join(disk, "d", "b"), "c++")
				}},
				{"read-write handle", func() error {
					fh, err := c.OpenFile("/d/b", os.O_RDWR)
					if err != nil {
						return err
					}
					defer fh.Close()
					buf := make([]byte, 3)
					if _, err := fh.ReadAt(buf, 0); err != nil && err != io.EOF {
						return err
					}
					if string(buf) != "c++" {
						return errorf("read-write handle read %q, want c++", buf)
					}
					return nil
				}},
				{"exclusive create of existing fails", func() error {
					_, err := c.OpenFile("/d/b", os.O_WRONLY|os.O_CREATE|os.O_EXCL)
					return wantCode(err, fxFailure)
				}},
				{"exclusive create", func() error {
					fh, err := c.OpenFile("/d/x", os.O_WRONLY|os.O_CREATE|os.O_EXCL)
					if err != nil {
						return err
					}
					if _, err := fh.Write([]byte("x")); err != nil {
						return err
					}
					if err := fh.Close(); err != nil {
						return err
					}
					if err := wantDisk(filepath.Join(disk, "d", "x"), "x"); err != nil {
						return err
					}
					return c.Remove("/d/x")
				}},
				{"open missing without create fails", func() error {
					_, err := c.OpenFile("/d/none", os.O_WRONLY)
					return wantCode(err, fxNoSuchFile)
				}},
				{"chmod", func() error {
					if err := c.Chmod("/d/b", 0o640|fs.ModeSetuid); err != nil {
						return err
					}
					fi, err := os.Stat(filepath.Join(disk, "d", "b"))
					if err != nil {
						return err
					}
					if fi.Mode() != 0o640 {
						return errorf("mode %v, want -rw-r----- (no setuid)", fi.Mode())
					}
					return nil
				}},
				{"chtimes", func() error {
					mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
					if err := c.Chtimes("/d/b", mt, mt); err != nil {
						return err
					}
					fi, err := c.Stat("/d/b")
					if err != nil {
						return err
					}
					if !fi.ModTime().Equal(mt) {
						return errorf("mtime %v, want %v", fi.ModTime(), mt)
					}
					return nil
				}},
				{"truncate", func() error {
					if err := c.Truncate("/d/b", 1); err != nil {
						return err
					}
					return wantDisk(filepath.Join(disk, "d", "b"), "c")
				}},
				{"chown to someone else refused", func() error {
					fi, err := os.Stat(filepath.Join(disk, "d", "b"))
					if err != nil {
						return err
					}
					uid, gid := ownerOf(fi)
					if err := c.Chown("/d/b", uid, gid); err != nil {
						return errorf("chown to the current owner: %v", err)
					}
					return wantCode(c.Chown("/d/b", uid+1, gid), fxPermissionDenied)
				}},
				{"symlink and readlink", func() error {
					if err := c.Symlink("b", "/d/l"); err != nil {
						return err
					}
					if err := want(c.ReadLink("/d/l"))("b"); err != nil {
						return err
					}
					fi, err := c.Lstat("/d/l")
					if err != nil {
						return err
					}
					if fi.Mode()&fs.ModeSymlink == 0 {
						return errorf("lstat mode %v, want a link", fi.Mode())
					}
					return wantBytes(readFile(c, "/d/l"))("c")
				}},
				{"symlink absolute inside its directory", func() error {
					if err := c.Symlink("/d/b", "/d/l2"); err != nil {
						return err
					}
					return want(os.Readlink(filepath.Join(disk, "d", "l2")))("b")
				}},
				{"put through a symlink replaces its target", func() error {
					writeFile(t, c, "/d/l", []byte("via link"))
					if err := wantDisk(filepath.Join(disk, "d", "b"), "via link"); err != nil {
						return err
					}
					return want(c.ReadLink("/d/l"))("b")
				}},
				{"hardlink", func() error {
					if err := c.Link("/d/b", "/d/h"); err != nil {
						return err
					}
					return wantBytes(readFile(c, "/d/h"))("via link")
				}},
				{"statvfs", func() error {
					st, err := c.StatVFS("/")
					if err != nil {
						return err
					}
					if st.Bsize == 0 || st.Namemax == 0 {
						return errorf("statvfs %+v, want block size and name max", st)
					}
					return nil
				}},
				{"remove a directory fails", func() error { return wantCode(c.Remove("/d"), fxFailure) }},
				{"rmdir a file fails", func() error { return wantCode(c.RemoveDirectory("/d/b"), fxFailure) }},
				{"rmdir non-empty fails", func() error { return wantCode(c.RemoveDirectory("/d"), fxFailure) }},
				{"rm", func() error {
					for _, n := range []string{"/d/b", "/d/h", "/d/l", "/d/l2"} {
						if err := c.Remove(n); err != nil {
							return err
						}
					}
					return wantNames(c.ReadDir("/d"))()
				}},
				{"rm missing", func() error { return wantCode(c.Remove("/d/b"), fxNoSuchFile) }},
				{"rmdir", func() error {
					if err := c.RemoveDirectory("/d"); err != nil {
						return err
					}
					return wantNames(c.ReadDir("/"))("rel")
				}},
				{"root cannot be removed or renamed", func() error {
					if err := wantCode(c.RemoveDirectory("/"), fxPermissionDenied); err != nil {
						return err
					}
					return wantCode(c.Rename("/", "/x"), fxPermissionDenied)
				}},
				{"no temporary files left", func() error {
					if p := partFiles(t, disk); len(p) > 0 {
						return errorf("temporary files left: %q", p)
					}
					return nil
				}},
			}
			for _, s := range steps {
				if err := s.run(); err != nil {
					t.Fatalf("%s: %v", s.name, err)
				}
			}
		})
	}
}

// TestScopes checks that each operation needs its scope and that a refused
// one gets "permission denied" and changes nothing.
func TestScopes(t *testing.T) {
	f := start(t, sftp.Config{}, core.Limits{},
		peer{"reader", []string{sftp.ScopeRead}},
		peer{"writer", []string{sftp.ScopeWrite}},
		peer{"admin", []string{"sftp:*"}})
	for _, id := range []string{"reader", "writer", "admin"} {
		dir := f.root(id)
		if err := os.MkdirAll(filepath.Join(dir, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reader, _ := f.client(t, core.NetworkQUIC, "reader")
	writer, _ := f.client(t, core.NetworkQUIC, "writer")
	admin, _ := f.client(t, core.NetworkQUIC, "admin")

	put := func(c *pkgsftp.Client) error {
		fh, err := c.Create("/new")
		if err != nil {
			return err
		}
		_, _ = fh.Write([]byte("x"))
		return fh.Close()
	}
	get := func(c *pkgsftp.Client) error { _, err := readFile(c, "/f"); return err }
	tests := []struct {
		name         string
		op           func(c *pkgsftp.Client) error
		reader, writ bool // whether the reader and the writer may
	}{
		{"get", get, true, false},
		{"ls", func(c *pkgsftp.Client) error { _, err := c.ReadDir("/"); return err }, true, false},
		{"stat", func(c *pkgsftp.Client) error { _, err := c.Stat("/f"); return err }, true, false},
		{"lstat", func(c *pkgsftp.Client) error { _, err := c.Lstat("/f"); return err }, true, false},
		{"statvfs", func(c *pkgsftp.Client) error { _, err := c.StatVFS("/"); return err }, true, false},
		{"read-write open", func(c *pkgsftp.Client) error {
			fh, err := c.OpenFile("/f", os.O_RDWR)
			if err == nil {
				fh.Close()
			}
			return err
		}, false, false},
		{"put", put, false, true},
		{"mkdir", func(c *pkgsftp.Client) error { return c.Mkdir("/m") }, false, true},
		{"setstat", func(c *pkgsftp.Client) error { return c.Chmod("/f", 0o600) }, false, true},
		{"symlink", func(c *pkgsftp.Client) error { return c.Symlink("f", "/s") }, false, true},
		{"hardlink", func(c *pkgsftp.Client) error { return c.Link("/f", "/h") }, false, true},
		{"rename", func(c *pkgsftp.Client) error { return c.Rename("/h", "/h2") }, false, true},
		{"posix-rename", func(c *pkgsftp.Client) error { return c.PosixRename("/h2", "/h3") }, false, true},
		{"rm", func(c *pkgsftp.Client) error { return c.Remove("/h3") }, false, true},
		{"rmdir", func(c *pkgsftp.Client) error { return c.RemoveDirectory("/d") }, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, who := range []struct {
				id    string
				c     *pkgsftp.Client
				allow bool
			}{{"reader", reader, tc.reader}, {"writer", writer, tc.writ}} {
				err := tc.op(who.c)
				switch {
				case who.allow && err != nil:
					t.Errorf("%s: %v, want success", who.id, err)
				case !who.allow && fxCode(err) != fxPermissionDenied:
					t.Errorf("%s: got %v, want permission denied", who.id, err)
				}
			}
			if err := tc.op(admin); err != nil && tc.name != "rm" && tc.name != "rename" && tc.name != "posix-rename" {
				// sftp:* holds both scopes; rename/rm ran for the writer
				// already, so their files are gone.
				t.Errorf("admin: %v, want success", err)
			}
		})
	}
	// Nothing the reader was refused changed its root.
	entries, err := os.ReadDir(f.root("reader"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"d", "f"}) {
		t.Errorf("reader's root holds %q, want [d f]", names)
	}
}

// TestTraversal tries to leave the root with "..", absolute paths and
// symbolic links (made on disk, and through SFTP).
func TestTraversal(t *testing.T) {
	f := start(t, sftp.Config{}, core.Limits{}, peer{"alice", rw}, peer{"bob", rw})
	alice := f.root("alice")
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "secret"), "outside secret")
	mustWrite(t, filepath.Join(f.base, "secret"), "base secret")
	mustWrite(t, filepath.Join(f.base, "bob", "x"), "bob's")
	mustWrite(t, filepath.Join(alice, "sub", "own"), "alice's")
	for link, target := range map[string]string{
		"out-abs":       outside,
		"out-file":      filepath.Join(outside, "secret"),
		"out-rel":       "../bob",
		"sub/out-rel":   "../../secret",
		"in-abs":        filepath.Join(alice, "sub"), // absolute, even inside: refused by os.Root
		"sub/dot-chain": "../sub/../../bob/x",
	} {
		if err := os.Symlink(target, filepath.Join(alice, link)); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := f.client(t, core.NetworkQUIC, "alice")

	reads := []struct {
		name string
		path string
		code int // status the client sees
	}{
		{"dot-dot", "../secret", fxNoSuchFile},
		{"dot-dot to a sibling root", "../bob/x", fxNoSuchFile},
		{"absolute dot-dot", "/../../secret", fxNoSuchFile},
		{"deep dot-dot", "/sub/../../../../../../etc/passwd", fxNoSuchFile},
		{"host absolute path", filepath.Join(outside, "secret"), fxNoSuchFile},
		{"link to an outside directory", "/out-abs/secret", fxPermissionDenied},
		{"link to an outside file", "/out-file", fxPermissionDenied},
		{"relative link to a sibling root", "/out-rel/x", fxPermissionDenied},
		{"relative link to the base", "/sub/out-rel", fxPermissionDenied},
		{"absolute link inside", "/in-abs/own", fxPermissionDenied},
		{"link through dot-dot", "/sub/dot-chain", fxPermissionDenied},
	}
	for _, tc := range reads {
		t.Run("get "+tc.name, func(t *testing.T) {
			data, err := readFile(c, tc.path)
			if fxCode(err) != tc.code {
				t.Fatalf("get %s: %q, %v; want status %d", tc.path, data, err, tc.code)
			}
		})
	}
	for _, tc := range []struct{ name, path string }{
		{"outside directory", "/out-abs"},
		{"sibling root", "/out-rel"},
	} {
		t.Run("ls "+tc.name, func(t *testing.T) {
			if names, err := c.ReadDir(tc.path); fxCode(err) != fxPermissionDenied {
				t.Fatalf("ls %s: %v, %v; want permission denied", tc.path, names, err)
			}
			if _, err := c.Stat(tc.path + "/x"); fxCode(err) != fxPermissionDenied {
				t.Fatalf("stat %s/x: %v, want permission denied", tc.path, err)
			}
		})
	}
	writes := []struct {
		name string
		op   func() error
	}{
		{"put into an outside directory", func() error {
			fh, err := c.Create("/out-abs/new")
			if err == nil {
				fh.Close()
			}
			return err
		}},
		{"put through a link to an outside file", func() error {
			fh, err := c.Create("/out-file")
			if err == nil {
				fh.Close()
			}
			return err
		}},
		{"mkdir in a sibling root", func() error { return c.Mkdir("/out-rel/m") }},
		{"rename into an outside directory", func() error { return c.Rename("/sub/own", "/out-abs/own") }},
		{"chmod through a link", func() error { return c.Chmod("/out-file", 0o777) }},
		{"truncate through a link", func() error { return c.Truncate("/out-file", 0) }},
		{"hardlink into an outside directory", func() error { return c.Link("/sub/own", "/out-abs/hl") }},
		{"symlink climbing out", func() error { return c.Symlink("../../secret", "/sub/s1") }},
		{"symlink climbing to the root", func() error { return c.Symlink("../own", "/sub/s2") }},
		{"symlink dot-dot inside", func() error { return c.Symlink("x/../../y", "/s3") }},
		{"symlink absolute outside its directory", func() error { return c.Symlink("/own", "/sub/s4") }},
		{"symlink from the root up", func() error { return c.Symlink("..", "/s5") }},
	}
	for _, tc := range writes {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.op(); fxCode(err) != fxPermissionDenied {
				t.Fatalf("got %v, want permission denied", err)
			}
		})
	}
	// Nothing outside changed.
	if err := wantDisk(filepath.Join(outside, "secret"), "outside secret"); err != nil {
		t.Error(err)
	}
	if fi, err := os.Stat(filepath.Join(outside, "secret")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("outside file: %v %v, want unchanged mode 0644", fi, err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 1 {
		t.Errorf("outside directory holds %d entries, want 1", len(entries))
	}
	if entries, _ := os.ReadDir(filepath.Join(f.base, "bob")); len(entries) != 1 {
		t.Errorf("bob's root holds %d entries, want 1", len(entries))
	}
	if err := wantDisk(filepath.Join(alice, "sub", "own"), "alice's"); err != nil {
		t.Error(err)
	}
}

// TestInterruptedUpload drops the connection in the middle of an upload:
// the target keeps its old content (or does not appear) and no temporary
// file remains.
func TestInterruptedUpload(t *testing.T) {
	for _, network := range networks {
		for _, existing := range []bool{false, true} {
			name := string(network) + "/new"
			if existing {
				name = string(network) + "/overwrite"
			}
			t.Run(name, func(t *testing.T) {
				f := start(t, sftp.Config{}, core.Limits{}, peer{"alice", rw})
				target := filepath.Join(f.root("alice"), "big")
				if existing {
					mustWrite(t, target, "old content")
				}
				c, conn := f.client(t, network, "alice")
				fh, err := c.Create("/big")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := fh.Write(bytes.Repeat([]byte("x"), 1<<20)); err != nil {
					t.Fatal(err)
				}
				// Mid-upload: the data is in a temporary file beside the
				// target, and the target is untouched.
				parts := partFiles(t, f.root("alice"))
				if len(parts) != 1 || filepath.Dir(parts[0]) != filepath.Dir(target) {
					t.Fatalf("temporary files during upload: %q, want one beside the target", parts)
				}
				if fi, err := fh.Stat(); err != nil || fi.Size() != 1<<20 {
					t.Fatalf("fstat during upload: %v %v, want 1 MiB written", fi, err)
				}
				checkTarget(t, target, existing)

				_ = conn.CloseWithError(core.CodeNoError, "")
				// Shutdown waits for the handler, so the session has
				// ended and cleaned up when it returns.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := f.node.Endpoint.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				checkTarget(t, target, existing)
				if parts := partFiles(t, f.root("alice")); len(parts) > 0 {
					t.Fatalf("temporary files after the interrupted upload: %q", parts)
				}
			})
		}
	}
}

func checkTarget(t *testing.T, target string, existing bool) {
	t.Helper()
	if existing {
		if err := wantDisk(target, "old content"); err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("target: %v, want it absent", err)
	}
}

// TestUploadHandleAttributes sets the mode and reads the size through the
// open upload handle (FSETSTAT, FSTAT), which act on the upload.
func TestUploadHandleAttributes(t *testing.T) {
	f := start(t, sftp.Config{}, core.Limits{}, peer{"alice", rw})
	c, _ := f.client(t, core.NetworkQUIC, "alice")
	fh, err := c.Create("/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write([]byte("12345")); err != nil {
		t.Fatal(err)
	}
	if err := fh.Chmod(0o600); err != nil {
		t.Fatal(err)
	}
	fi, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 5 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("fstat: size %d mode %v, want 5 -rw-------", fi.Size(), fi.Mode())
	}
	if err := fh.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	disk, err := os.Stat(filepath.Join(f.root("alice"), "x"))
	if err != nil {
		t.Fatal(err)
	}
	if disk.Mode().Perm() != 0o600 || disk.Size() != 3 {
		t.Fatalf("on disk: size %d mode %v, want 3 -rw-------", disk.Size(), disk.Mode())
	}
}

// TestLargeRoundTrip uploads and downloads 100 MiB and compares SHA-256,
// over both transports. Under -race, QUIC moves 20 MiB (it runs several
// times slower there); TCP+TLS still moves 100 MiB.
func TestLargeRoundTrip(t *testing.T) {
	for _, network := range networks {
		size := int64(100 << 20)
		if raceEnabled && network == core.NetworkQUIC {
			size = 20 << 20
		}
		t.Run(string(network), func(t *testing.T) {
			f := start(t, sftp.Config{}, core.Limits{}, peer{"alice", rw})
			c, _ := f.client(t, network, "alice", pkgsftp.UseConcurrentWrites(true), pkgsftp.MaxConcurrentRequestsPerFile(64))
			roundTrip(t, c, filepath.Join(f.root("alice"), "big"), size)
		})
	}
}

func roundTrip(t *testing.T, c *pkgsftp.Client, onDisk string, size int64) {
	begin := time.Now()
	up := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), up)
	fh, err := c.Create("/big")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := fh.ReadFromWithConcurrency(src, 64); err != nil || n != size {
		t.Fatalf("upload: %d bytes, %v", n, err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	upTime := time.Since(begin)

	begin = time.Now()
	down := sha256.New()
	fh, err = c.Open("/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := fh.WriteTo(down)
	fh.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	t.Logf("%d MiB up in %v, down in %v", size>>20, upTime.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	if !bytes.Equal(up.Sum(nil), down.Sum(nil)) {
		t.Fatalf("SHA-256 differs: sent %x, received %x", up.Sum(nil), down.Sum(nil))
	}
	disk, err := os.Open(onDisk)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	stored := sha256.New()
	if _, err := io.Copy(stored, disk); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(up.Sum(nil), stored.Sum(nil)) {
		t.Fatalf("SHA-256 on disk %x, want %x", stored.Sum(nil), up.Sum(nil))
	}
}

// TestPerIdentityRoots checks that identities see only their own root and
// that Roots overrides Root.
func TestPerIdentityRoots(t *testing.T) {
	base, carolDir := t.TempDir(), filepath.Join(t.TempDir(), "carol", "files")
	f := start(t, sftp.Config{Root: filepath.Join(base, "sftp"), Roots: map[string]string{"carol": carolDir}}, core.Limits{},
		peer{"alice", rw}, peer{"bob", rw}, peer{"carol", rw})
	clients := map[string]*pkgsftp.Client{}
	for _, id := range []string{"alice", "bob", "carol"} {
		clients[id], _ = f.client(t, core.NetworkQUIC, id)
		writeFile(t, clients[id], "/mine", []byte(id))
		writeFile(t, clients[id], "/only-"+id, nil)
	}
	for id, c := range clients {
		if err := wantBytes(readFile(c, "/mine"))(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		if err := wantNames(c.ReadDir("/"))("mine", "only-"+id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	for id, dir := range map[string]string{
		"alice": filepath.Join(base, "sftp", "alice"),
		"bob":   filepath.Join(base, "sftp", "bob"),
		"carol": carolDir,
	} {
		if err := wantDisk(filepath.Join(dir, "mine"), id); err != nil {
			t.Error(err)
		}
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s's root: %v %v, want mode 0700", id, fi, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(base, "sftp")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("Root: %v %v, want created with mode 0700", fi, err)
	}
}

// TestRefused checks who is turned away before any SFTP packet is served,
// and that a QUIC client sees CodeForbidden.
func TestRefused(t *testing.T) {
	var auth coretest.Buffer
	logger := slog.New(slog.NewTextHandler(&auth, nil))
	f := start(t, sftp.Config{Access: core.AccessControl{AllScopes: []string{"files"}}, Logger: logger}, core.Limits{},
		peer{"ok", []string{"files", sftp.ScopeRead}},
		peer{"no-access-scope", []string{sftp.ScopeRead, sftp.ScopeWrite}},
		peer{"no-sftp-scope", []string{"files"}},
		peer{"../evil", []string{"files", sftp.ScopeRead}},
		peer{"a/b", []string{"files", sftp.ScopeRead}},
		peer{".hidden", []string{"files", sftp.ScopeRead}})
	unknown := coretestKey(t)
	tests := []struct {
		name string
		dial func(network core.Network) core.Conn
		ok   bool
	}{
		{"allowed", func(n core.Network) core.Conn { return f.dial(t, n, "ok") }, true},
		{"anonymous", func(n core.Network) core.Conn { return f.dial(t, n, "") }, false},
		{"unknown key", func(n core.Network) core.Conn { return f.node.Dial(t, n, unknown, sftp.ALPN) }, false},
		{"missing access scope", func(n core.Network) core.Conn { return f.dial(t, n, "no-access-scope") }, false},
		{"missing sftp scopes", func(n core.Network) core.Conn { return f.dial(t, n, "no-sftp-scope") }, false},
		{"id with dot-dot", func(n core.Network) core.Conn { return f.dial(t, n, "../evil") }, false},
		{"id with slash", func(n core.Network) core.Conn { return f.dial(t, n, "a/b") }, false},
		{"id starting with a dot", func(n core.Network) core.Conn { return f.dial(t, n, ".hidden") }, false},
	}
	for _, network := range networks {
		for _, tc := range tests {
			t.Run(string(network)+"/"+tc.name, func(t *testing.T) {
				conn := tc.dial(network)
				c, err := session(t, conn)
				if tc.ok {
					if err != nil {
						t.Fatalf("session: %v", err)
					}
					if _, err := c.ReadDir("/"); err != nil {
						t.Fatalf("ls: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatal("session opened, want refused")
				}
				if network != core.NetworkQUIC {
					return // TCP cannot carry the code
				}
				<-conn.Context().Done()
				var ae *quic.ApplicationError
				if cause := context.Cause(conn.Context()); !errors.As(cause, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(core.CodeForbidden) || !ae.Remote {
					t.Fatalf("connection ended with %v, want the peer's %v", cause, core.CodeForbidden)
				}
			})
		}
	}
	entries, err := os.ReadDir(f.base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "ok" {
			t.Errorf("refused identity got a root: %s", e.Name())
		}
	}
	// One fixed auth line per refused connection, in the fail2ban shape.
	var lines []string
	for _, l := range strings.Split(auth.String(), "\n") {
		if strings.Contains(l, "msg=auth") {
			lines = append(lines, l)
		}
	}
	if want := 2 * (len(tests) - 1); len(lines) != want {
		t.Fatalf("%d auth lines, want %d:\n%s", len(lines), want, auth.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, "level=WARN msg=auth result=reject alpn=alknet/sftp remote_ip=127.0.0.1 id=") {
			t.Errorf("auth line %q lacks the fixed shape", l)
		}
	}
	if !strings.Contains(auth.String(), "id=- node=-") || !strings.Contains(auth.String(), `id=../evil node=`) {
		t.Errorf("auth lines lack the anonymous or the named refusal:\n%s", auth.String())
	}
}

// TestShutdownDrains checks what Serve does when the endpoint shuts down:
// idle sessions end at once; a session with an open upload may finish it
// but open nothing new, and ends with its connection.
func TestShutdownDrains(t *testing.T) {
	f := start(t, sftp.Config{}, core.Limits{DrainTimeout: time.Minute}, peer{"alice", rw})
	idle, _ := f.client(t, core.NetworkQUIC, "alice")
	busy, busyConn := f.client(t, core.NetworkQUIC, "alice")
	if _, err := idle.Getwd(); err != nil {
		t.Fatal(err)
	}
	fh, err := busy.Create("/late")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.node.Endpoint.Shutdown(ctx) }()

	// The idle session is closed: the client's next request fails.
	for {
		if _, err := idle.Stat("/"); err != nil {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("idle session still served after shutdown began")
		case <-time.After(10 * time.Millisecond):
		}
	}
	// The busy one finishes its upload, and may open nothing new.
	if _, err := busy.Create("/other"); fxCode(err) != fxFailure {
		t.Fatalf("open while draining: %v, want failure", err)
	}
	if _, err := fh.Write([]byte("finished")); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	if err := wantDisk(filepath.Join(f.root("alice"), "late"), "finished"); err != nil {
		t.Fatal(err)
	}
	_ = busy.Close()
	_ = busyConn.CloseWithError(core.CodeNoError, "")
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestMaxHandles checks the per-session limit on open handles.
func TestMaxHandles(t *testing.T) {
	f := start(t, sftp.Config{MaxHandles: 2}, core.Limits{}, peer{"alice", rw})
	mustWrite(t, filepath.Join(f.root("alice"), "f"), "x")
	c, _ := f.client(t, core.NetworkQUIC, "alice")
	a, err := c.Open("/f")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Create("/g")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open("/f"); fxCode(err) != fxFailure {
		t.Fatalf("third handle: %v, want failure", err)
	}
	if _, err := c.ReadDir("/"); fxCode(err) != fxFailure {
		t.Fatalf("directory handle past the limit: %v, want failure", err)
	}
	a.Close()
	b.Close()
	if _, err := readFile(c, "/f"); err != nil {
		t.Fatalf("handle after closing others: %v", err)
	}
}

// TestManySessionsPerConnection runs several sessions on one QUIC
// connection at once.
func TestManySessionsPerConnection(t *testing.T) {
	f := start(t, sftp.Config{}, core.Limits{}, peer{"alice", rw})
	conn := f.dial(t, core.NetworkQUIC, "alice")
	errs := make(chan error, 4)
	for i := range 4 {
		c, err := session(t, conn)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			name := "/s" + string(rune('0'+i))
			fh, err := c.Create(name)
			if err == nil {
				_, err = fh.Write([]byte(name))
			}
			if err == nil {
				err = fh.Close()
			}
			if err == nil {
				err = wantBytes(readFile(c, name))(name)
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
