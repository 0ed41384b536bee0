package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is the [Reloader] debounce used when Debounce is not
// positive.
const DefaultDebounce = 100 * time.Millisecond

// Reloader calls Reload when the config file changes or the process gets
// SIGHUP. Set its fields, then call [Reloader.Run]; the fields must not change
// while Run runs.
type Reloader struct {
	// Path is the config file to watch. Its directory is watched, so that an
	// editor or [AppendPeer] replacing the file by a rename is seen; events of
	// other files there are ignored. The directory must exist.
	Path string
	// Reload parses and validates the file, builds a snapshot and swaps it
	// in. An error must leave the running config unchanged; it is logged and
	// the Reloader goes on. Reload is called from Run's goroutine, one call
	// at a time, with Run's context. Required.
	Reload func(ctx context.Context) error
	// Logger receives "config reloaded" (Info) and "config reload failed"
	// (Error) records. Nil means slog.Default().
	Logger *slog.Logger
	// Signals triggers a reload on every value received. Nil means SIGHUP,
	// subscribed with signal.Notify when Run starts and stopped when it
	// returns.
	Signals <-chan os.Signal
	// Debounce is how long file events must pause before a reload, so a
	// burst of writes causes one reload. Zero or negative means
	// [DefaultDebounce]. Signals are not debounced.
	Debounce time.Duration
}

// Run watches the file and the signals and calls Reload for each change,
// until ctx ends; then it returns nil, having stopped the watcher and its
// goroutines. It returns an error at once if Reload is nil or the watcher
// cannot start (e.g. the directory of Path does not exist).
func (r *Reloader) Run(ctx context.Context) error {
	if r.Reload == nil {
		return errors.New("config: Reloader.Reload is nil")
	}
	logger := r.Logger
	if logger == nil {
		logger = slog.Default()
	}
	debounce := r.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	abs, err := filepath.Abs(r.Path)
	if err != nil {
		return fmt.Errorf("config: watch %s: %w", r.Path, err)
	}
	name := filepath.Base(abs)

	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("config: watch %s: %w", r.Path, err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(abs)); err != nil {
		return fmt.Errorf("config: watch %s: %w", r.Path, err)
	}

	sigs := r.Signals
	if sigs == nil {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGHUP)
		defer signal.Stop(c)
		sigs = c
	}

	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()

	reload := func(trigger string) {
		if err := r.Reload(ctx); err != nil {
			logger.Error("config reload failed", "file", r.Path, "trigger", trigger, "err", err)
			return
		}
		logger.Info("config reloaded", "file", r.Path, "trigger", trigger)
	}

	const changed = fsnotify.Create | fsnotify.Write | fsnotify.Rename | fsnotify.Remove
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return fmt.Errorf("config: watch %s: watcher stopped", r.Path)
			}
			if filepath.Base(ev.Name) == name && ev.Op&changed != 0 {
				timer.Reset(debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return fmt.Errorf("config: watch %s: watcher stopped", r.Path)
			}
			logger.Error("config watch error", "file", r.Path, "err", err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				timer.Reset(debounce) // events were lost: re-read to be safe
			}
		case <-sigs:
			reload("signal")
		case <-timer.C:
			reload("file")
		}
	}
}
