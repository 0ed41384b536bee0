package callbench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// payload is the JSON object every call scenario sends and gets back:
// 64 bytes as JSON (see [newPayload]).
type payload struct {
	// ID is 42 in calls and counts the events of a subscription.
	ID int `json:"id"`
	// Name and Data are filler.
	Name string `json:"name"`
	Data string `json:"data"`
}

// newPayload returns the payload the call scenarios echo:
// {"id":42,"name":"alknet-bench","data":"0123456789abcdefghijklm"}, 64 bytes.
func newPayload() payload {
	return payload{ID: 42, Name: "alknet-bench", Data: "0123456789abcdefghijklm"}
}

// CallSystem is a request-reply stack that call runs measure.
type CallSystem string

// The call systems.
const (
	// AlknetQUIC is alknet/call over QUIC through core.Endpoint, dialed with
	// core.Dialer: one QUIC stream per call.
	AlknetQUIC CallSystem = "alknet"
	// AlknetTCP is alknet/call over TCP+TLS 1.3 through core.Endpoint: one
	// TLS stream carries every call, multiplexed by request id.
	AlknetTCP CallSystem = "alknet-tcp"
	// GRPC is grpc-go unary calls over TLS 1.3 (HTTP/2 on TCP) with a
	// self-signed certificate; messages are JSON (a forced codec), so gRPC
	// carries the same bytes alknet does.
	GRPC CallSystem = "grpc"
	// NATS is request-reply through a nats-server embedded in the process,
	// over plain TCP (no TLS), with one responder subscription.
	NATS CallSystem = "nats"
	// Direct is alknet/call over QUIC to a worker node that is joined to a
	// head: the baseline of [Routed].
	Direct CallSystem = "direct"
	// Routed sends the call to the head, whose operation passes it through
	// to the worker (call.RegisterRoute with call.Specific): client → head
	// → worker, both legs QUIC.
	Routed CallSystem = "routed"
)

// callSystems returns the systems of the call comparison, in the order runs
// interleave them.
func callSystems() []CallSystem { return []CallSystem{AlknetQUIC, AlknetTCP, GRPC, NATS} }

// RouteSystems returns the systems of the routing comparison.
func RouteSystems() []CallSystem { return []CallSystem{Direct, Routed} }

// subscribeSystems returns the systems that serve subscriptions: the alknet
// ones. [Routed] streams through the head (call.RegisterRoute).
func subscribeSystems() []CallSystem { return []CallSystem{AlknetQUIC, AlknetTCP, Routed} }

// callClient is one system's client connection; it owns the servers it
// reaches and stops them in close.
type callClient interface {
	// call sends in and decodes the echo into out; safe for concurrent use.
	call(ctx context.Context, in, out *payload) error
	close() error
}

// CallTarget is a running server (or cluster) of one call system on
// 127.0.0.1 and one client connection to it, shared by every caller. Its
// methods are safe for concurrent use, except Close.
type CallTarget struct {
	system CallSystem
	client callClient
}

// startCallTarget starts the servers of sys with fresh keys and connects
// the client, so that nothing is set up while a run is timed. For [Routed]
// it returns once the worker is attached to the head. The caller stops it
// with Close.
func startCallTarget(ctx context.Context, sys CallSystem) (*CallTarget, error) {
	return StartCallTargetAt(ctx, sys, CallPlace{})
}

// CallPlace is where a call target runs: its servers listen on host
// (127.0.0.1 when empty) with the sockets listen makes, its client dials
// with the sockets dial makes (both nil on the loopback; across an emulated
// link they make them in namespace B and A, [netem.Link.Do]).
type CallPlace struct {
	host         string
	listen, dial func(func() error) error
}

// LinkCallPlace serves in l's namespace B and calls from A.
func LinkCallPlace(l *netem.Link) CallPlace {
	return CallPlace{
		host:   l.Addr(netem.SideB).String(),
		listen: func(f func() error) error { return l.Do(netem.SideB, f) },
		dial:   func(f func() error) error { return l.Do(netem.SideA, f) },
	}
}

func (p CallPlace) addr() string {
	if p.host == "" {
		return "127.0.0.1"
	}
	return p.host
}

func (p CallPlace) doListen(f func() error) error {
	if p.listen == nil {
		return f()
	}
	return p.listen(f)
}

func (p CallPlace) doDial(f func() error) error {
	if p.dial == nil {
		return f()
	}
	return p.dial(f)
}

// StartCallTargetAt is StartCallTarget at place; only [AlknetQUIC],
// [AlknetTCP] and [GRPC] run elsewhere than on the loopback.
func StartCallTargetAt(ctx context.Context, sys CallSystem, place CallPlace) (*CallTarget, error) {
	if (place.listen != nil || place.dial != nil) && sys != AlknetQUIC && sys != AlknetTCP && sys != GRPC {
		return nil, fmt.Errorf("bench: call system %q runs on the loopback only", sys)
	}
	var c callClient
	var err error
	switch sys {
	case AlknetQUIC, AlknetTCP:
		c, err = startAlknet(ctx, sys, place)
	case Direct, Routed:
		c, err = startAlknetCluster(ctx, sys == Routed)
	case GRPC:
		c, err = startGRPC(place)
	case NATS:
		c, err = startNATS()
	case RESTH2, RESTH3:
		c, err = startREST(sys)
	case MCPTool:
		c, err = startMCP(ctx)
	case PlainH2:
		c, err = startPlainH2()
	default:
		return nil, fmt.Errorf("bench: unknown call system %q", sys)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: start %s: %w", sys, err)
	}
	return &CallTarget{system: sys, client: c}, nil
}

// Close closes the client and stops the servers.
func (t *CallTarget) Close() error { return t.client.close() }

// call makes one echo call and checks the answer.
func (t *CallTarget) call(ctx context.Context) error {
	in := newPayload()
	var out payload
	if err := t.client.call(ctx, &in, &out); err != nil {
		return fmt.Errorf("bench: %s call: %w", t.system, err)
	}
	if out != in {
		return fmt.Errorf("bench: %s call: echoed %+v, want %+v", t.system, out, in)
	}
	return nil
}

// CallOptions is one call run.
type CallOptions struct {
	// Duration is how long new calls are started; zero means 1s. Each
	// caller makes at least one.
	Duration time.Duration
	// Concurrency is the number of goroutines calling over the one
	// connection, each making calls one after the other; zero means 1.
	Concurrency int
}

// CallResult is what a call run measured.
type CallResult struct {
	// Run counts rounds from 1 in a comparison; 0 for a single run.
	Run         int
	System      CallSystem
	Concurrency int
	// elapsed runs from the start until the last call returned.
	elapsed time.Duration
	// Latencies are the calls' round-trip times, one per call.
	Latencies []time.Duration
}

// Rate returns the completed calls per second.
func (r CallResult) Rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.elapsed.Seconds()
}

// runGrace is how long a run may last beyond its duration before its
// calls are cancelled, so that a hung call fails the run instead of
// blocking it.
const runGrace = 10 * time.Second

// Run makes calls from opts.Concurrency goroutines for opts.Duration. It
// stops at the first failure, or when opts.Duration plus 10s have passed.
func (t *CallTarget) Run(ctx context.Context, opts CallOptions) (CallResult, error) {
	if opts.Duration == 0 {
		opts.Duration = time.Second
	}
	opts.Concurrency = max(opts.Concurrency, 1)
	res := CallResult{System: t.system, Concurrency: opts.Concurrency}
	ctx, cancelTimeout := context.WithTimeout(ctx, opts.Duration+runGrace)
	defer cancelTimeout()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lats := make([][]time.Duration, opts.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(opts.Duration)
	for i := range opts.Concurrency {
		wg.Go(func() {
			for {
				t0 := time.Now()
				if err := t.call(ctx); err != nil {
					cancel(err)
					return
				}
				now := time.Now()
				lats[i] = append(lats[i], now.Sub(t0))
				if now.After(deadline) || ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.Latencies = slices.Concat(lats...)
	return res, context.Cause(ctx)
}

// CallConfig is an interleaved call comparison.
type CallConfig struct {
	// Systems are compared; the first round runs them in this order, each
	// later one starts with the next. Nil means [callSystems].
	Systems []CallSystem
	// Concurrency lists the caller counts; nil means 1, 16 and 256.
	Concurrency []int
	// Duration is each run's length; zero means 1s.
	Duration time.Duration
	// Runs is how many rounds run; zero means 5.
	Runs int
	// Progress, if set, is called after each run, from the calling
	// goroutine.
	Progress func(CallResult)
}

// CallReport holds every run of a call comparison.
type CallReport struct {
	// Config is the comparison's configuration, defaults filled in.
	Config CallConfig
	// runs are in the order they ran.
	runs []CallResult
}

// Rate summarizes the calls per second of sys at concurrency c.
func (r *CallReport) Rate(sys CallSystem, c int) harness.Stats {
	var v []float64
	for _, run := range r.runs {
		if run.System == sys && run.Concurrency == c {
			v = append(v, run.Rate())
		}
	}
	return harness.Summarize(v)
}

// Latencies returns every call latency of sys at concurrency c, pooled
// over the runs.
func (r *CallReport) Latencies(sys CallSystem, c int) []time.Duration {
	var all []time.Duration
	for _, run := range r.runs {
		if run.System == sys && run.Concurrency == c {
			all = append(all, run.Latencies...)
		}
	}
	return all
}

// RateRatio summarizes, over the rounds, the ratio of a's calls per second
// to b's at concurrency c, each round's runs taken together.
func (r *CallReport) RateRatio(a, b CallSystem, c int) harness.Stats {
	return r.paired(a, b, c, CallResult.Rate)
}

// P50Ratio summarizes, over the rounds, the ratio of a's median latency to
// b's at concurrency c.
func (r *CallReport) P50Ratio(a, b CallSystem, c int) harness.Stats {
	return r.paired(a, b, c, func(run CallResult) float64 { return float64(harness.Percentile(run.Latencies, 50)) })
}

func (r *CallReport) paired(a, b CallSystem, c int, f func(CallResult) float64) harness.Stats {
	type key struct {
		run int
		sys CallSystem
	}
	vals := map[key]float64{}
	for _, run := range r.runs {
		if run.Concurrency == c {
			vals[key{run.Run, run.System}] = f(run)
		}
	}
	var v []float64
	for run := 1; run <= r.Config.Runs; run++ {
		x, okA := vals[key{run, a}]
		y, okB := vals[key{run, b}]
		if okA && okB && y != 0 {
			v = append(v, x/y)
		}
	}
	return harness.Summarize(v)
}

// warmupDuration is the untimed run each target makes at the highest
// concurrency before a comparison.
const warmupDuration = 200 * time.Millisecond

// CompareCalls starts a [CallTarget] per system and runs cfg.Runs rounds;
// each round makes one run per concurrency and system, the systems' order
// rotating from round to round. Each target first makes an untimed run. It
// stops at the first failure, returning what it measured so far.
func CompareCalls(ctx context.Context, cfg CallConfig) (rep *CallReport, err error) {
	if cfg.Systems == nil {
		cfg.Systems = callSystems()
	}
	if cfg.Concurrency == nil {
		cfg.Concurrency = []int{1, 16, 256}
	}
	if cfg.Duration == 0 {
		cfg.Duration = time.Second
	}
	if cfg.Runs == 0 {
		cfg.Runs = 5
	}
	rep = &CallReport{Config: cfg}
	targets, err := startCallTargets(ctx, cfg.Systems)
	defer func() { err = errors.Join(err, closeCallTargets(targets)) }()
	if err != nil {
		return rep, err
	}
	for _, t := range targets {
		if _, err := t.Run(ctx, CallOptions{Duration: warmupDuration, Concurrency: slices.Max(cfg.Concurrency)}); err != nil {
			return rep, fmt.Errorf("warm-up: %w", err)
		}
	}
	for run := 1; run <= cfg.Runs; run++ {
		for _, c := range cfg.Concurrency {
			for i := range targets {
				t := targets[(i+run-1)%len(targets)]
				res, err := t.Run(ctx, CallOptions{Duration: cfg.Duration, Concurrency: c})
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
	}
	return rep, nil
}

// startCallTargets starts a target per system, all or none.
func startCallTargets(ctx context.Context, systems []CallSystem) ([]*CallTarget, error) {
	var targets []*CallTarget
	for _, sys := range systems {
		t, err := startCallTarget(ctx, sys)
		if err != nil {
			return nil, errors.Join(err, closeCallTargets(targets))
		}
		targets = append(targets, t)
	}
	return targets, nil
}

// closeCallTargets closes every target.
func closeCallTargets(targets []*CallTarget) error {
	var errs []error
	for _, t := range targets {
		errs = append(errs, t.Close())
	}
	return errors.Join(errs...)
}
