package netutil

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestWatcher: a caller that stops standing is ended once, within a few
// intervals; one that stands or was stopped is not; the goroutine stops
// with the last watch (goleak checks).
func TestWatcher(t *testing.T) {
	w := &Watcher{Interval: 10 * time.Millisecond}
	var revoked, kept, stopped atomic.Bool
	var ends atomic.Int32
	endedCh := make(chan struct{})
	stopRevoked := w.Watch(func() bool { return !revoked.Load() }, func() {
		ends.Add(1)
		close(endedCh)
	})
	stopKept := w.Watch(func() bool { return true }, func() { kept.Store(true) })
	stopStopped := w.Watch(func() bool { return false }, func() { stopped.Store(true) })
	stopStopped()

	revoked.Store(true)
	select {
	case <-endedCh:
	case <-time.After(5 * time.Second):
		t.Fatal("a revoked caller was not ended")
	}
	// A few more checks run: end is not called again.
	time.Sleep(50 * time.Millisecond)
	if n := ends.Load(); n != 1 {
		t.Errorf("end called %d times, want once", n)
	}
	if kept.Load() || stopped.Load() {
		t.Errorf("ended a standing caller (%v) or a stopped watch (%v)", kept.Load(), stopped.Load())
	}
	stopRevoked()
	stopRevoked() // idempotent
	stopKept()
	w.mu.Lock()
	running := w.quit != nil
	w.mu.Unlock()
	if running {
		t.Error("the check loop still runs with no watch")
	}
}

// TestWatcherStopsWhenAllEnded: the loop stops once every watch was ended,
// even before their stops run, and a new watch starts it again.
func TestWatcherStopsWhenAllEnded(t *testing.T) {
	w := &Watcher{Interval: 5 * time.Millisecond}
	for range 2 {
		ended := make(chan struct{})
		stop := w.Watch(func() bool { return false }, func() { close(ended) })
		<-ended
		deadline := time.Now().Add(5 * time.Second)
		for {
			w.mu.Lock()
			running := w.quit != nil
			w.mu.Unlock()
			if !running {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the check loop runs on with every watch ended")
			}
			time.Sleep(time.Millisecond)
		}
		stop()
	}
}
