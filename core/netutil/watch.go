package netutil

import (
	"sync"
	"time"
)

// Watcher checks, every Interval, that each registered caller still stands
// (its credential was not revoked, removed or narrowed by a reload, its
// token has not expired), and ends those that do not. One goroutine runs
// the checks while any watch is registered; it starts with the first
// [Watcher.Watch] and stops with the last stop, so an idle Watcher runs
// nothing and needs no closing. The zero value checks every 500 ms; a
// Watcher must not be copied after first use. It is safe for concurrent
// use.
type Watcher struct {
	// Interval is the time between checks; 0 means 500 ms.
	Interval time.Duration

	mu      sync.Mutex
	watches map[*watch]struct{}
	quit    chan struct{} // closes to stop the running loop; nil: none runs
}

// DefaultWatchInterval is a zero [Watcher.Interval].
const DefaultWatchInterval = 500 * time.Millisecond

type watch struct {
	valid func() bool
	end   func()
}

// Watch registers a caller: valid reports whether it still stands, end
// ends it. Once a check finds valid false, the watch is removed and end
// is called, once, from the Watcher's goroutine; valid is never called
// again. valid must be quick and must not block on the caller's work.
// stop removes the watch; end may still be running, or about to run, when
// stop returns if a check found it invalid just before, so end must be
// harmless after the caller ended. stop is idempotent and may be called
// from end.
func (w *Watcher) Watch(valid func() bool, end func()) (stop func()) {
	wt := &watch{valid: valid, end: end}
	w.mu.Lock()
	if w.watches == nil {
		w.watches = make(map[*watch]struct{})
	}
	w.watches[wt] = struct{}{}
	if w.quit == nil {
		w.quit = make(chan struct{})
		go w.loop(w.quit)
	}
	w.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			delete(w.watches, wt)
			w.stopIfIdle()
		})
	}
}

// stopIfIdle stops the loop when no watch is left. w.mu is held.
func (w *Watcher) stopIfIdle() {
	if len(w.watches) == 0 && w.quit != nil {
		close(w.quit)
		w.quit = nil
	}
}

// loop checks the registered callers until quit closes.
func (w *Watcher) loop(quit <-chan struct{}) {
	every := w.Interval
	if every <= 0 {
		every = DefaultWatchInterval
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-quit:
			return
		case <-tick.C:
			w.check()
		}
	}
}

// check ends every registered caller that no longer stands.
func (w *Watcher) check() {
	w.mu.Lock()
	ws := make([]*watch, 0, len(w.watches))
	for wt := range w.watches {
		ws = append(ws, wt)
	}
	w.mu.Unlock()
	var gone []*watch
	for _, wt := range ws {
		if !wt.valid() {
			gone = append(gone, wt)
		}
	}
	if len(gone) == 0 {
		return
	}
	w.mu.Lock()
	fire := gone[:0]
	for _, wt := range gone {
		if _, live := w.watches[wt]; live { // not stopped meanwhile
			delete(w.watches, wt)
			fire = append(fire, wt)
		}
	}
	w.stopIfIdle()
	w.mu.Unlock()
	for _, wt := range fire {
		wt.end()
	}
}

// Watching returns how many watches are registered; the check loop runs
// while it is above zero.
func (w *Watcher) Watching() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.watches)
}
