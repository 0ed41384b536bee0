package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/fs"
	"github.com/alkdev/alknet/msg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freePort returns a loopback TCP port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testKeys are new node keys, as the vault gives them.
func testKeys(t *testing.T) Keys {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, 32)
	_, _ = rand.Read(seed)
	mk, err := msg.NewKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	mix := make([]byte, 32)
	_, _ = rand.Read(mix)
	return Keys{Node: key, Msg: mk, MixSeed: mix}
}

// testNode is a node value over cfg and a temporary data dir, as Run makes
// it.
func testNode(t *testing.T, cfg *Config) *node {
	t.Helper()
	keys := testKeys(t)
	d, err := cfg.Directory()
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	return &node{
		logger: logger, key: keys.Node, id: ID(keys.Node), dataDir: t.TempDir(), cfg: cfg, version: "test",
		msgKey: keys.Msg, mixSeed: keys.MixSeed,
		identities: core.NewLiveDirectory(d, nil), calls: call.NewRegistry(), peers: call.NewPeers(call.First, logger),
	}
}

// storeFree checks that the fs store under dir is closed: this process can
// lock it again.
func storeFree(t *testing.T, cfg *Config, dir string) {
	t.Helper()
	s, err := OpenStore(cfg.FS.Dir(dir), fs.Options{NoSync: true})
	if err != nil {
		t.Fatalf("the fs store is still open: %v", err)
	}
	s.Close()
}

// TestFailedBuildClosesWhatItBuilt: when a later service fails to build,
// what the earlier ones opened is closed (the fs store is unlocked), and
// no builder opened a socket (ssh's plain TCP listener binds in the run
// phase).
func TestFailedBuildClosesWhatItBuilt(t *testing.T) {
	sshAddr := freePort(t)
	cfg := &Config{}
	cfg.SSH.TCPListen = sshAddr
	cfg.FS.NoSync = true
	cfg.HTTP.MaxBodyBytes = -1 // refused by http.New, the builder after fs
	n := testNode(t, cfg)
	on, err := enabled(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := build(n, on, &lifecycle{logger: n.logger}); err == nil || !strings.Contains(err.Error(), "service http") {
		t.Fatalf("build: %v, want http's error", err)
	}
	storeFree(t, cfg, n.dataDir)
	ln, err := net.Listen("tcp", sshAddr)
	if err != nil {
		t.Fatalf("ssh.tcp_listen's port after the failed build: %v", err)
	}
	ln.Close()
}

// TestDisabledServiceDependents: a disabled service is not served, and the
// services that use it (ssh uses sftp and call, http uses ssh and dns) are
// built without it.
func TestDisabledServiceDependents(t *testing.T) {
	tests := []struct {
		disable []string
		want    int // handlers
	}{
		{nil, len(services())},
		{[]string{"sftp", "call"}, len(services()) - 2},
		{[]string{"ssh", "dns"}, len(services()) - 2},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.disable, ","), func(t *testing.T) {
			on, err := enabled(tt.disable)
			if err != nil {
				t.Fatal(err)
			}
			l := &lifecycle{logger: slog.New(slog.DiscardHandler)}
			hs, err := build(testNode(t, &Config{}), on, l)
			t.Cleanup(func() { _ = l.close() })
			if err != nil {
				t.Fatal(err)
			}
			if len(hs) != tt.want {
				t.Fatalf("%d handlers, want %d", len(hs), tt.want)
			}
			r, err := core.NewRouter(hs...)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range services() {
				served := slices.Contains(r.ALPNs(), s.alpns[0])
				if served == slices.Contains(tt.disable, s.name) {
					t.Errorf("%s: served %v with disable %v", s.name, served, tt.disable)
				}
			}
		})
	}
	if _, err := enabled([]string{"nope"}); err == nil || !strings.Contains(err.Error(), `unknown service "nope"`) {
		t.Errorf("unknown service: %v", err)
	}
}

// runNode runs Run on cfg in the background and returns the address it
// listens on, the node's data dir and a stop function that returns Run's
// result.
func runNode(t *testing.T, cfg *Config, peerKey ed25519.PublicKey) (addr, dir string, stop func() error) {
	t.Helper()
	keys := testKeys(t)
	dir = t.TempDir()
	cfgPath := filepath.Join(dir, "alknet.toml")
	if peerKey != nil {
		id, _ := core.NodeIDFromPublicKey(peerKey)
		text := fmt.Sprintf("[[peers]]\nid = \"client\"\nkeys = [%q]\n", id.String())
		if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		loaded, err := LoadConfig(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Core.Peers = loaded.Peers
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Config: cfg, ConfigPath: cfgPath, DataDir: dir, Keys: keys, Listen: "127.0.0.1:0",
			Version: "test", Logger: slog.New(slog.DiscardHandler), Ready: func(a string) { ready <- a },
		})
	}()
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v", err)
	}
	var once bool
	stop = func() error {
		if once {
			return nil
		}
		once = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after its context ended")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return ID(keys.Node).String() + "@" + addr, dir, stop
}

// TestRunServesAndStops: Run, without any command line, serves the call
// service to a configured peer, stops when its context ends and closes its
// stores.
func TestRunServesAndStops(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{}
	cfg.FS.NoSync = true
	cfg.Services.Disable = []string{"dns"} // no publisher dialling out
	addr, dir, stop := runNode(t, cfg, pub)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := call.Dial(ctx, addr, call.Options{Dialer: &core.Dialer{Key: key}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Message string }
	if err := c.Call(ctx, "sys/echo", map[string]string{"message": "hi"}, &out); err != nil || out.Message != "hi" {
		t.Fatalf("sys/echo: %+v, %v", out, err)
	}
	c.Close()
	if err := stop(); err != nil {
		t.Fatalf("Run after the stop: %v", err)
	}
	storeFree(t, cfg, dir)
}

// TestRunFailureClosesServices: a start that fails after the build (here
// the web certificate) closes what the services opened.
func TestRunFailureClosesServices(t *testing.T) {
	cfg := &Config{}
	cfg.FS.NoSync = true
	cfg.TLS.CertFile, cfg.TLS.KeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem"
	dir := t.TempDir()
	err := Run(context.Background(), Options{
		Config: cfg, ConfigPath: filepath.Join(dir, "alknet.toml"), DataDir: dir, Keys: testKeys(t),
		Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
	})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run with a missing certificate: %v", err)
	}
	storeFree(t, cfg, dir)
}
