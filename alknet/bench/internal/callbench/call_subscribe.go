package callbench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// subscribe runs one subscription of n events (each a [payload], sent by
// the node as fast as it can), decodes every event and returns how many
// arrived. Only the alknet systems serve subscriptions.
func (t *CallTarget) subscribe(ctx context.Context, n int) (int, error) {
	a, ok := t.client.(*alknetClient)
	if !ok {
		return 0, fmt.Errorf("bench: %s serves no subscriptions", t.system)
	}
	got, err := a.subscribe(ctx, n)
	if err == nil && got != n {
		err = fmt.Errorf("%d events, want %d", got, n)
	}
	if err != nil {
		return got, fmt.Errorf("bench: %s subscription: %w", t.system, err)
	}
	return got, nil
}

// DefaultSubscribeEvents is the default number of events per subscription.
// It was the most that could not overflow the 256 answers the call module
// buffered for a call's consumer before a single-stream (TCP+TLS) call was
// cut off as too slow; since the call module's per-call flow control a
// slow consumer back-pressures its subscription on every transport, and
// 255 stays the short row so that runs compare with earlier ones.
const DefaultSubscribeEvents = 255

// subscribeOptions is one subscription run.
type subscribeOptions struct {
	// duration is how long new subscriptions are started, one after the
	// other; zero means 1s. At least one runs.
	duration time.Duration
	// events is the events per subscription; zero means
	// DefaultSubscribeEvents.
	events int
	// max, if positive, ends the run after that many subscriptions.
	max int
}

// SubscribeResult is what a subscription run measured.
type SubscribeResult struct {
	// Run counts rounds from 1 in a comparison; 0 for a single run.
	Run    int
	System CallSystem
	// events counts the events received, those of failed subscriptions
	// included.
	events int
	// Subscriptions counts the subscriptions started; Failed those that
	// ended with an error instead of completing.
	Subscriptions, Failed int
	// err is the first failure; nil when every subscription completed.
	err error
	// elapsed runs from the first subscription's start to the last one's
	// end.
	elapsed time.Duration
}

// Rate returns the events received per second, those of failed
// subscriptions included.
func (r SubscribeResult) Rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.events) / r.elapsed.Seconds()
}

// runSubscriptions makes subscriptions one after the other for
// opts.Duration (or until opts.Max of them ran). A failed subscription is
// counted and the run goes on; it returns an error only when ctx ends. A
// subscription still running 10s after opts.Duration is cancelled, and
// counted as failed.
func (t *CallTarget) runSubscriptions(ctx context.Context, opts subscribeOptions) (SubscribeResult, error) {
	if opts.duration == 0 {
		opts.duration = time.Second
	}
	if opts.events == 0 {
		opts.events = DefaultSubscribeEvents
	}
	res := SubscribeResult{System: t.system}
	start := time.Now()
	subCtx, cancel := context.WithTimeout(ctx, opts.duration+runGrace)
	defer cancel()
	for {
		n, err := t.subscribe(subCtx, opts.events)
		res.events += n
		res.Subscriptions++
		if err != nil {
			res.Failed++
			if res.err == nil {
				res.err = err
			}
		}
		if ctx.Err() != nil {
			res.elapsed = time.Since(start)
			return res, ctx.Err()
		}
		if time.Since(start) >= opts.duration || res.Subscriptions == opts.max {
			break
		}
	}
	res.elapsed = time.Since(start)
	return res, nil
}

// SubscribeConfig is an interleaved subscription comparison.
type SubscribeConfig struct {
	// Systems are compared, rotating as in [CallConfig]; nil means
	// [subscribeSystems].
	Systems []CallSystem
	// Duration is each run's length; zero means 1s.
	Duration time.Duration
	// Events is the events per subscription; zero means
	// DefaultSubscribeEvents.
	Events int
	// Max, if positive, caps the subscriptions of each run (and of the
	// warm-up).
	Max int
	// Runs is how many rounds run; zero means 5.
	Runs int
	// Progress, if set, is called after each run, from the calling
	// goroutine.
	Progress func(SubscribeResult)
}

// SubscribeReport holds every run of a subscription comparison.
type SubscribeReport struct {
	// Config is the comparison's configuration, defaults filled in.
	Config SubscribeConfig
	// runs are in the order they ran.
	runs []SubscribeResult
}

// Rate summarizes the events per second of sys.
func (r *SubscribeReport) Rate(sys CallSystem) harness.Stats {
	var v []float64
	for _, run := range r.runs {
		if run.System == sys {
			v = append(v, run.Rate())
		}
	}
	return harness.Summarize(v)
}

// Failures returns how many subscriptions of sys failed and how many ran,
// over all runs, and the first failure.
func (r *SubscribeReport) Failures(sys CallSystem) (failed, started int, first error) {
	for _, run := range r.runs {
		if run.System == sys {
			failed += run.Failed
			started += run.Subscriptions
			if first == nil {
				first = run.err
			}
		}
	}
	return failed, started, first
}

// CompareSubscriptions starts a [CallTarget] per system and runs cfg.Runs
// rounds of one subscription run per system, the order rotating from round
// to round, after one untimed run of a tenth of cfg.Duration each. Failed
// subscriptions are counted in the results; it stops only when a target
// does not start or ctx ends, returning what it measured so far.
func CompareSubscriptions(ctx context.Context, cfg SubscribeConfig) (rep *SubscribeReport, err error) {
	if cfg.Systems == nil {
		cfg.Systems = subscribeSystems()
	}
	if cfg.Duration == 0 {
		cfg.Duration = time.Second
	}
	if cfg.Events == 0 {
		cfg.Events = DefaultSubscribeEvents
	}
	if cfg.Runs == 0 {
		cfg.Runs = 5
	}
	rep = &SubscribeReport{Config: cfg}
	targets, err := startCallTargets(ctx, cfg.Systems)
	defer func() { err = errors.Join(err, closeCallTargets(targets)) }()
	if err != nil {
		return rep, err
	}
	for _, t := range targets {
		if _, err := t.runSubscriptions(ctx, subscribeOptions{duration: cfg.Duration / 10, events: cfg.Events, max: cfg.Max}); err != nil {
			return rep, err
		}
	}
	for run := 1; run <= cfg.Runs; run++ {
		for i := range targets {
			t := targets[(i+run-1)%len(targets)]
			res, err := t.runSubscriptions(ctx, subscribeOptions{duration: cfg.Duration, events: cfg.Events, max: cfg.Max})
			res.Run = run
			if err != nil {
				return rep, err
			}
			rep.runs = append(rep.runs, res)
			if cfg.Progress != nil {
				cfg.Progress(res)
			}
		}
	}
	return rep, nil
}
