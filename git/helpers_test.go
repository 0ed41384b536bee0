package git_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/git"
)

// peer is a configured identity of a test node.
type peer struct {
	id     string
	scopes []string
}

// fixture is a loopback node serving git, with a key per peer.
type fixture struct {
	node *coretest.Node
	srv  *git.Server
	root string
	keys map[string]ed25519.PrivateKey
	bin  string // directory holding the git-remote-alknet link
}

// start runs a node serving git for peers; cfg.Root defaults to a fresh
// temporary directory, cfg.Logger to the test log.
func start(t *testing.T, cfg git.Config, peers ...peer) *fixture {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f := &fixture{root: cfg.Root, keys: make(map[string]ed25519.PrivateKey)}
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
	f.srv, err = git.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := call.NewRegistry()
	if err := f.srv.Register(reg); err != nil {
		t.Fatal(err)
	}
	calls, err := call.New(call.Config{Registry: reg, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	f.node = coretest.Start(t, core.Config{Identities: core.NewLiveDirectory(dir, nil), Logger: cfg.Logger}, f.srv, calls)
	return f
}

// eachBackend runs test once per backend, as a subtest named after it.
func eachBackend(t *testing.T, test func(t *testing.T, backend string)) {
	for _, b := range []string{git.BackendGoGit, git.BackendExec} {
		t.Run(b, func(t *testing.T) { test(t, b) })
	}
}

// client dials the node's call service as id ("": anonymous).
func (f *fixture) client(t *testing.T, id string) *call.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := call.Dial(ctx, f.node.Addr, call.Options{Dialer: &core.Dialer{Key: f.keys[id]}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// url is the alknet:// URL of repo on the fixture's node.
func (f *fixture) url(repo string) string {
	return "alknet://" + f.node.Addr + "/" + repo + ".git"
}

// helperDir returns a directory holding git-remote-alknet, a link to the
// test binary.
func helperDir(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, helperName)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// gitEnv is an environment for stock git: no user or system config, the
// helper on PATH, identity id's key for the helper ("" or unknown:
// anonymous).
func (f *fixture) gitEnv(t *testing.T, id string) []string {
	t.Helper()
	if f.bin == "" {
		f.bin = helperDir(t)
	}
	seed := ""
	if k, ok := f.keys[id]; ok {
		seed = hex.EncodeToString(k.Seed())
	}
	home := t.TempDir()
	return append(os.Environ(),
		"PATH="+f.bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+home, "XDG_CONFIG_HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		// A race-enabled helper would sleep a second at exit.
		"GORACE=atexit_sleep_ms=0",
		keyEnv+"="+seed)
}

// runGit runs git in dir and returns its combined output.
func runGit(env []string, dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// mustGit runs git and fails the test if it fails; it returns the
// trimmed output.
func mustGit(t *testing.T, env []string, dir string, args ...string) string {
	t.Helper()
	out, err := runGit(env, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// needGit skips (or, with ALKNET_REQUIRE_INTEROP=1, fails) without git.
func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("ALKNET_REQUIRE_INTEROP") == "1" {
			t.Fatal("git not found and ALKNET_REQUIRE_INTEROP=1")
		}
		t.Skip("git not found")
	}
}

// workRepo makes a local repository with n commits on main.
func workRepo(t *testing.T, env []string, n int) string {
	t.Helper()
	dir := t.TempDir()
	mustGit(t, env, dir, "init", "-q", "-b", "main")
	for i := range n {
		commit(t, env, dir, "f.txt", strings.Repeat("line\n", i+1))
	}
	return dir
}

// commit writes content to name in dir and commits it.
func commit(t *testing.T, env []string, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	mustGit(t, env, dir, "add", name)
	mustGit(t, env, dir, "commit", "-q", "-m", "change "+name)
}

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
