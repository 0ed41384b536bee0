package main

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

// meterDelay is how long a transfer runs before its meter shows: shorter
// ones stay quiet, and get no summary line either.
const meterDelay = time.Second

// meterEvery is how often a shown meter redraws.
const meterEvery = 200 * time.Millisecond

// meter shows a network transfer's bytes and rate on one terminal line
// while it runs, and a summary line (bytes, time, rate) when it ends.
// A nil *meter does nothing, so callers need not check.
type meter struct {
	w     io.Writer
	verb  string
	start time.Time
	delay time.Duration
	n     atomic.Int64
	stop  chan struct{}
	done  chan struct{}
	shown bool // written by run only; read after done
}

// newMeter returns a meter on stderr, or nil when stderr is not a
// terminal (a pipe or a log file gets no progress, and no summary).
func newMeter(c *cli.Context, verb string) *meter {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return startMeter(f, verb, meterDelay, meterEvery)
}

// startMeter starts a meter writing to w: it draws every `every` once
// delay has passed.
func startMeter(w io.Writer, verb string, delay, every time.Duration) *meter {
	m := &meter{w: w, verb: verb, start: time.Now(), delay: delay, stop: make(chan struct{}), done: make(chan struct{})}
	go m.run(every)
	return m
}

func (m *meter) run(every time.Duration) {
	defer close(m.done)
	wait := time.NewTimer(m.delay)
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-m.stop:
		return
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		n, d := m.n.Load(), time.Since(m.start)
		fmt.Fprintf(m.w, "\r\x1b[K%s %s, %s/s", m.verb, humanBytes(n), humanBytes(rate(n, d)))
		m.shown = true
		select {
		case <-tick.C:
		case <-m.stop:
			return
		}
	}
}

// set records the bytes moved so far.
func (m *meter) set(n int64) {
	if m != nil {
		m.n.Store(n)
	}
}

// finish stops the meter, clears its line and, if the transfer succeeded
// and took at least the delay, prints the summary line.
func (m *meter) finish(ok bool) {
	if m == nil {
		return
	}
	close(m.stop)
	<-m.done
	if m.shown {
		fmt.Fprint(m.w, "\r\x1b[K")
	}
	if d := time.Since(m.start); ok && d >= m.delay {
		n := m.n.Load()
		fmt.Fprintf(m.w, "%s %s in %v (%s/s)\n", m.verb, humanBytes(n), d.Round(10*time.Millisecond), humanBytes(rate(n, d)))
	}
}

// rate is n bytes over d, per second.
func rate(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// humanBytes writes n in B, kB, MB or GB (powers of 1000, as rates are).
func humanBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.2f GB", float64(n)/1e9)
}
