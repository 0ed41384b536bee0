package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/fs"
)

// controlClient is a call client over the control socket of the node on
// dir.
func controlClient(t *testing.T, dir string) *call.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := DialControl(ctx, dir, call.ALPN)
	if err != nil {
		t.Fatalf("DialControl: %v", err)
	}
	c, err := call.NewClient(ctx, conn, call.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// quietConfig is a node config for these tests: no dns publisher, no
// syncing store.
func quietConfig() *Config {
	cfg := &Config{}
	cfg.FS.NoSync = true
	cfg.Services.Disable = []string{"dns"}
	return cfg
}

// TestControlSocketOperator: the control socket is 0600 and its caller is
// the operator (every scope, never a worker); sys/status reports the bound
// address, the services, the live connections per ALPN and the auth
// rejects of every service; the socket is gone after the stop.
func TestControlSocketOperator(t *testing.T) {
	cfg := quietConfig()
	addr, dir, stop := runNode(t, cfg, nil)
	path := ControlPath(dir)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}

	c := controlClient(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var echo map[string]string
	if err := c.Call(ctx, "sys/echo", map[string]string{"message": "hi"}, &echo); err != nil {
		t.Fatalf("sys/echo: %v", err)
	}
	if echo["caller"] != Operator.ID {
		t.Errorf("caller %q, want %q", echo["caller"], Operator.ID)
	}
	// An admin operation: the operator holds every scope.
	var gc fs.GCResult
	if err := c.Call(ctx, "fs/gc", nil, &gc); err != nil {
		t.Errorf("fs/gc as operator: %v", err)
	}

	// A network client with a token nobody issued: refused, and the
	// reject shows in the status.
	id, _, _ := strings.Cut(addr, "@")
	_, hostport, _ := strings.Cut(addr, "@")
	bad, err := call.Dial(ctx, addr, call.Options{Dialer: &core.Dialer{}, AuthToken: "alk_notissued", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Call(ctx, "sys/info", nil, nil); !call.IsCode(err, call.CodeForbidden) {
		t.Fatalf("call with an unknown token: %v", err)
	}

	var st Status
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Call(ctx, "sys/status", nil, &st); err != nil {
			t.Fatalf("sys/status: %v", err)
		}
		if st.Connections[call.ALPN] == 1 && len(st.AuthRejects) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.NodeID != id || st.Listen != hostport || st.Version != "test" || st.ControlSocket != path {
		t.Errorf("status: node %s listen %s version %s socket %s; want %s %s test %s", st.NodeID, st.Listen, st.Version, st.ControlSocket, id, hostport, path)
	}
	if got := st.Connections[call.ALPN]; got != 1 {
		t.Errorf("alknet/call connections %d, want 1 (the control socket's are not counted): %v", got, st.Connections)
	}
	if len(st.Workers) != 0 {
		t.Errorf("workers %v: the operator must never attach", st.Workers)
	}
	if i := slices.IndexFunc(st.Services, func(s ServiceStatus) bool { return s.Name == "dns" }); i < 0 || st.Services[i].Enabled {
		t.Errorf("services %+v: want dns listed as disabled", st.Services)
	}
	if len(st.AuthRejects) == 0 || st.AuthRejects[0].ALPN != call.ALPN || st.AuthRejectsTotal == 0 {
		t.Errorf("auth rejects %+v (total %d), want the refused token on alknet/call", st.AuthRejects, st.AuthRejectsTotal)
	}
	if st.Reload != nil {
		t.Errorf("reload %+v before any", st.Reload)
	}

	c.Close()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket after the stop: %v", err)
	}
	if _, err := DialControl(ctx, dir, call.ALPN); !errors.Is(err, ErrNoNode) {
		t.Errorf("DialControl without a node: %v, want ErrNoNode", err)
	}
}

// TestControlReload: sys/reload applies the file now and reports a broken
// one; the status keeps the result.
func TestControlReload(t *testing.T) {
	_, dir, _ := runNode(t, quietConfig(), nil)
	c := controlClient(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfgPath := filepath.Join(dir, "alknet.toml")
	tests := []struct {
		name, file string
		ok         bool
	}{
		{"valid", "[http]\nrate = 5\n", true},
		{"broken", "[http\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(cfgPath, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			var out reloadOut
			if err := c.Call(ctx, "sys/reload", nil, &out); err != nil {
				t.Fatal(err)
			}
			if out.OK != tt.ok || (out.Error == "") != tt.ok {
				t.Errorf("sys/reload: %+v, want ok %v", out, tt.ok)
			}
			var st Status
			if err := c.Call(ctx, "sys/status", nil, &st); err != nil {
				t.Fatal(err)
			}
			if st.Reload == nil || st.Reload.OK != tt.ok || st.Reload.Trigger != "control" {
				t.Errorf("status reload %+v, want ok %v by control", st.Reload, tt.ok)
			}
		})
	}
}

// TestControlOneNodePerDataDir: a second node on the data dir refuses to
// start while the first runs; a stale socket (no node answers) is removed.
func TestControlOneNodePerDataDir(t *testing.T) {
	t.Run("running", func(t *testing.T) {
		_, dir, _ := runNode(t, quietConfig(), nil)
		err := Run(context.Background(), Options{
			Config: quietConfig(), ConfigPath: filepath.Join(dir, "alknet.toml"), DataDir: dir, Keys: testKeys(t),
			Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		})
		if !errors.Is(err, ErrNodeRunning) {
			t.Fatalf("second Run: %v, want ErrNodeRunning", err)
		}
	})
	t.Run("stale", func(t *testing.T) {
		dir := t.TempDir()
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ControlPath(dir), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ln.SetUnlinkOnClose(false)
		ln.Close() // the file stays, and nobody answers
		cfg := quietConfig()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			done <- Run(ctx, Options{Config: cfg, ConfigPath: filepath.Join(dir, "alknet.toml"), DataDir: dir,
				Keys: testKeys(t), Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
				Ready: func(string) { cancel() }})
		}()
		if err := <-done; err != nil {
			t.Fatalf("Run over a stale socket: %v", err)
		}
	})
}

// TestControlRefusesUnknownProtocol: the socket serves only call, fs and
// msg, and says so.
func TestControlRefusesUnknownProtocol(t *testing.T) {
	_, dir, _ := runNode(t, quietConfig(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := DialControl(ctx, dir, "alknet/ssh")
	if err == nil || !strings.Contains(err.Error(), "alknet/ssh is not served here") {
		t.Fatalf("DialControl alknet/ssh: %v", err)
	}
}

// TestControlPathTooLong: a data dir too deep for a unix socket runs the
// node without one, with a warning, rather than failing to start.
func TestControlPathTooLong(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", maxSocketPath))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	err := Run(ctx, Options{Config: quietConfig(), ConfigPath: filepath.Join(dir, "alknet.toml"), DataDir: dir,
		Keys: testKeys(t), Listen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &log}, nil)),
		Ready: func(string) { cancel() }})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(log.String(), "too long for a unix socket") {
		t.Errorf("no warning in:\n%s", log.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
