package sftp_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/sftp"
)

// rw is the scope set of a peer that may read and write.
var rw = []string{sftp.ScopeRead, sftp.ScopeWrite}

// peer is a configured identity of a test node.
type peer struct {
	id     string
	scopes []string
}

// fixture is a loopback node serving sftp, with a key per peer.
type fixture struct {
	node *coretest.Node
	srv  *sftp.Server
	base string // Config.Root
	keys map[string]ed25519.PrivateKey
}

// networks are the transports every protocol test runs over.
var networks = []core.Network{core.NetworkQUIC, core.NetworkTCP}

// start runs a node serving sftp for peers. cfg.Root defaults to a fresh
// temporary directory; cfg.Logger to the test log.
func start(t *testing.T, cfg sftp.Config, limits core.Limits, peers ...peer) *fixture {
	t.Helper()
	if cfg.Root == "" && cfg.Roots == nil {
		cfg.Root = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	f := &fixture{base: cfg.Root, keys: make(map[string]ed25519.PrivateKey)}
	var entries []core.PeerEntry
	for _, p := range peers {
		k := coretest.NewKey(t)
		f.keys[p.id] = k
		entries = append(entries, core.PeerEntry{ID: p.id, NodeIDs: []core.NodeID{coretest.NodeID(k)}, Scopes: p.scopes})
	}
	dir, err := core.NewDirectory(entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.srv, err = sftp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.node = coretest.Start(t, core.Config{Identities: core.NewLiveDirectory(dir, nil), Limits: limits, Logger: cfg.Logger}, f.srv)
	return f
}

// dial connects as id ("" or an unknown name: anonymous) over network.
func (f *fixture) dial(t *testing.T, network core.Network, id string) core.Conn {
	t.Helper()
	return f.node.Dial(t, network, f.keys[id], sftp.ALPN)
}

// client opens an SFTP session as id over network.
func (f *fixture) client(t *testing.T, network core.Network, id string, opts ...pkgsftp.ClientOption) (*pkgsftp.Client, core.Conn) {
	t.Helper()
	conn := f.dial(t, network, id)
	c, err := session(t, conn, opts...)
	if err != nil {
		t.Fatalf("sftp session as %q over %s: %v", id, network, err)
	}
	return c, conn
}

// session opens a stream on conn and starts an SFTP client on it.
func session(t *testing.T, conn core.Conn, opts ...pkgsftp.ClientOption) (*pkgsftp.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	c, err := pkgsftp.NewClientPipe(st, st, opts...)
	if err != nil {
		st.Abort(core.CodeNoError)
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

// root is id's directory on disk.
func (f *fixture) root(id string) string { return filepath.Join(f.base, id) }

// fxCode returns the SFTP status code in err, or -1. pkg/sftp's client
// reports "no such file" and "permission denied" as the os errors.
func fxCode(err error) int {
	var se *pkgsftp.StatusError
	switch {
	case errors.As(err, &se):
		return int(se.Code)
	case errors.Is(err, fs.ErrNotExist):
		return fxNoSuchFile
	case errors.Is(err, fs.ErrPermission):
		return fxPermissionDenied
	}
	return -1
}

// Status codes a client sees (SSH_FX_*).
const (
	fxNoSuchFile       = 2
	fxPermissionDenied = 3
	fxFailure          = 4
)

// writeFile uploads data to name.
func writeFile(t *testing.T, c *pkgsftp.Client, name string, data []byte) {
	t.Helper()
	f, err := c.Create(name)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatalf("write %s: %v", name, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", name, err)
	}
}

// readFile downloads name.
func readFile(c *pkgsftp.Client, name string) ([]byte, error) {
	f, err := c.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// partFiles lists the upload temporary files under dir.
func partFiles(t testing.TB, dir string) []string {
	t.Helper()
	var parts []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(d.Name(), ".part") {
			parts = append(parts, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return parts
}

// testLogger logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// errorf is fmt.Errorf, for test steps.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// want checks a call's result against a wanted value.
func want[T comparable](got T, err error) func(T) error {
	return func(w T) error {
		if err != nil {
			return err
		}
		if got != w {
			return fmt.Errorf("got %v, want %v", got, w)
		}
		return nil
	}
}

// wantBytes checks downloaded content.
func wantBytes(got []byte, err error) func(string) error {
	return func(w string) error {
		if err != nil {
			return err
		}
		if string(got) != w {
			return fmt.Errorf("content %q, want %q", got, w)
		}
		return nil
	}
}

// wantNames checks a directory listing's names, in any order.
func wantNames(fis []os.FileInfo, err error) func(...string) error {
	return func(w ...string) error {
		if err != nil {
			return err
		}
		var got []string
		for _, fi := range fis {
			got = append(got, fi.Name())
		}
		slices.Sort(got)
		slices.Sort(w)
		if !slices.Equal(got, w) {
			return fmt.Errorf("listing %q, want %q", got, w)
		}
		return nil
	}
}

// wantCode checks the SFTP status in err.
func wantCode(err error, code int) error {
	if fxCode(err) != code {
		return fmt.Errorf("got %v, want status %d", err, code)
	}
	return nil
}

// wantDisk checks a file's content on disk.
func wantDisk(name, content string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if string(b) != content {
		return fmt.Errorf("%s holds %q, want %q", name, b, content)
	}
	return nil
}

// mustWrite writes a file, creating its directory.
func mustWrite(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ownerOf returns a file's uid and gid.
func ownerOf(fi os.FileInfo) (int, int) {
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// coretestKey returns a key no peer has.
func coretestKey(t *testing.T) ed25519.PrivateKey { return coretest.NewKey(t) }
