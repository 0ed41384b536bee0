package call

import (
	"sync"
	"time"
)

// workerIdle is how long a worker waits for its next job before exiting.
const workerIdle = 2 * time.Second

// workers runs a session's jobs (stream readers, requests, handlers) on
// goroutines that wait a while for the next job instead of exiting. A busy
// connection then stops paying, call after call, for a new goroutine and for
// growing its stack again through JSON decoding: on the c16 call benchmark
// that was a fifth of the CPU.
type workers struct {
	jobs     chan func()
	stop     chan struct{}
	stopOnce sync.Once
	wg       *sync.WaitGroup // the session's: counts each worker
}

func newWorkers(wg *sync.WaitGroup) *workers {
	return &workers{jobs: make(chan func()), stop: make(chan struct{}), wg: wg}
}

// Go runs f on an idle worker, or on a new one.
func (w *workers) Go(f func()) {
	select {
	case w.jobs <- f:
	default:
		w.wg.Add(1)
		go w.run(f)
	}
}

// close makes idle workers exit; busy ones exit after their job.
func (w *workers) close() { w.stopOnce.Do(func() { close(w.stop) }) }

func (w *workers) run(f func()) {
	defer w.wg.Done()
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		f = nil
		idle.Reset(workerIdle)
		select {
		case f = <-w.jobs:
		case <-w.stop:
			return
		case <-idle.C:
			return
		}
	}
}
