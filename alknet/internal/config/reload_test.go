package config

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// reloadHarness runs a Reloader on a temporary file until the test ends.
type reloadHarness struct {
	path    string
	sigs    chan os.Signal
	calls   chan int
	log     *coretest.Buffer
	results chan error // each Reload returns the next value sent here, nil if none is waiting
}

func startReloader(t *testing.T) *reloadHarness {
	t.Helper()
	h := &reloadHarness{
		path:    filepath.Join(t.TempDir(), "alknet.toml"),
		sigs:    make(chan os.Signal, 1),
		calls:   make(chan int, 16),
		log:     &coretest.Buffer{},
		results: make(chan error, 4),
	}
	if err := os.WriteFile(h.path, []byte("# v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n := 0
	r := &Reloader{
		Path:    h.path,
		Signals: h.sigs,
		Logger:  slog.New(slog.NewTextHandler(h.log, nil)),
		Reload: func(ctx context.Context) error {
			var err error
			select {
			case err = <-h.results:
			default:
			}
			n++
			h.calls <- n
			return err
		},
		Debounce: 20 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	// A signal proves the loop runs, so the watcher is in place.
	h.signal(t)
	return h
}

func (h *reloadHarness) signal(t *testing.T) {
	t.Helper()
	h.sigs <- os.Interrupt
	h.wait(t, "signal")
}

// wait waits for one Reload call.
func (h *reloadHarness) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-h.calls:
	case <-time.After(2 * time.Second):
		t.Fatalf("no reload within 2s of %s", what)
	}
}

// waitLog waits until the log contains s: the log line follows the call.
func (h *reloadHarness) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !strings.Contains(h.log.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("log %q does not contain %q", h.log.String(), s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReloaderFileEvents(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, path string)
	}{
		{"atomic rename", func(t *testing.T, path string) {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, []byte("# v2\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"write in place", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("# v2\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"AppendToken", func(t *testing.T, path string) {
			if err := AppendToken(path, Token{Name: "t", Hash: mustHash(t)}, nil); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startReloader(t)
			// Another file in the directory triggers nothing.
			if err := os.WriteFile(filepath.Join(filepath.Dir(h.path), "other.toml"), nil, 0o600); err != nil {
				t.Fatal(err)
			}
			tt.write(t, h.path)
			h.wait(t, tt.name)
			h.waitLog(t, `msg="config reloaded" file=`+h.path+" trigger=file")
			select {
			case <-h.calls:
				t.Error("one change caused more than one reload")
			case <-time.After(100 * time.Millisecond):
			}
		})
	}
}

func TestReloaderErrorKeepsRunning(t *testing.T) {
	h := startReloader(t)
	h.results <- errors.New(`alknet.toml:3:1: peers.bogus: unknown key`)
	h.signal(t)
	h.waitLog(t, `level=ERROR msg="config reload failed" file=`+h.path+` trigger=signal err="alknet.toml:3:1: peers.bogus: unknown key"`)
	h.signal(t)
	h.waitLog(t, `level=INFO msg="config reloaded" file=`+h.path+" trigger=signal")
}

func TestReloaderStartErrors(t *testing.T) {
	tests := []struct {
		name string
		r    Reloader
		want string
	}{
		{"no Reload", Reloader{Path: "x.toml"}, "Reload is nil"},
		{"no directory", Reloader{Path: filepath.Join(t.TempDir(), "missing", "x.toml"), Reload: func(context.Context) error { return nil }, Signals: make(chan os.Signal)}, "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestReloaderDefaultSignal runs with the SIGHUP subscription and checks it
// is released when Run returns (goleak checks the rest at exit).
func TestReloaderDefaultSignal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alknet.toml")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := &Reloader{Path: path, Reload: func(context.Context) error { return nil }, Logger: slog.New(slog.DiscardHandler)}
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run = %v, want nil at ctx end", err)
	}
}

func mustHash(t *testing.T) core.TokenHash {
	t.Helper()
	_, h, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
