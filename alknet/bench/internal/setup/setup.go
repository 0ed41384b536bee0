package setup

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/bare"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
)

// echoALPN is the protocol of the B2 server: on the first stream of each
// connection it reads one byte, writes it back and is done.
const echoALPN = "alknet/bench-echo"

// EchoHandler serves [echoALPN].
type EchoHandler struct{}

// ALPNs implements core.Handler.
func (EchoHandler) ALPNs() []string { return []string{echoALPN} }

// Serve implements core.Handler. A client that goes away early is not the
// handler's failure, so it returns nil either way.
func (EchoHandler) Serve(ctx context.Context, c core.Conn) error {
	s, err := c.AcceptStream(ctx)
	if err != nil {
		return nil
	}
	defer s.Close()
	var b [1]byte
	_ = s.SetReadDeadline(time.Now().Add(bare.HeaderTimeout))
	if _, err := io.ReadFull(s, b[:]); err != nil {
		return nil
	}
	_, _ = s.Write(b[:])
	return nil
}

// setupServer is a core.Endpoint on 127.0.0.1 serving [echoALPN] over QUIC
// and TCP+TLS, for connection set-up runs. Its methods are safe for
// concurrent use.
type setupServer struct {
	e *harness.Endpoint
}

// startSetupServer starts a set-up server with fresh keys. The caller stops
// it with Close.
func startSetupServer() (*setupServer, error) {
	e, err := harness.StartEndpoint(EchoHandler{})
	if err != nil {
		return nil, err
	}
	return &setupServer{e: e}, nil
}

// Close stops the server.
func (s *setupServer) Close() error { return s.e.Close() }

// Handshake dials the server over network with core.Dialer (presenting a
// client key the server knows), opens a stream, sends one byte, reads it
// back and closes the connection. It returns the time from the start of the
// dial to the byte's return; the close is not included.
func (s *setupServer) Handshake(ctx context.Context, network core.Network) (time.Duration, error) {
	start := time.Now()
	c, err := s.e.Dialer(network).Dial(ctx, s.e.Addr, echoALPN)
	if err != nil {
		return 0, fmt.Errorf("bench: handshake: %w", err)
	}
	defer c.CloseWithError(core.CodeNoError, "")
	st, err := c.OpenStream(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: handshake: open stream: %w", err)
	}
	defer st.Close()
	b := [1]byte{42}
	if _, err := st.Write(b[:]); err != nil {
		return 0, fmt.Errorf("bench: handshake: write: %w", err)
	}
	if _, err := io.ReadFull(st, b[:]); err != nil {
		return 0, fmt.Errorf("bench: handshake: read: %w", err)
	}
	return time.Since(start), nil
}

// handshakeOptions is one B2 run.
type handshakeOptions struct {
	// network is core.NetworkQUIC or core.NetworkTCP.
	network core.Network
	// duration is how long new handshakes are started; zero means 2s. Each
	// worker makes at least one.
	duration time.Duration
	// concurrency is the number of workers, each making handshakes one
	// after the other; zero means 1.
	concurrency int
}

// HandshakeResult is what a B2 run measured.
type HandshakeResult struct {
	// Run counts rounds from 1 in a comparison; 0 for a single run.
	Run         int
	Network     core.Network
	Concurrency int
	// elapsed runs from the start until the last handshake and its close
	// were done.
	elapsed time.Duration
	// Latencies are the connect-to-first-byte times, in completion order.
	Latencies []time.Duration
}

// Rate returns the completed handshakes (each with its connection's close)
// per second.
func (r HandshakeResult) Rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(len(r.Latencies)) / r.elapsed.Seconds()
}

// run makes handshakes over opts.Network from opts.Concurrency workers for
// opts.Duration. It stops at the first failure.
func (s *setupServer) run(ctx context.Context, opts handshakeOptions) (HandshakeResult, error) {
	if opts.duration == 0 {
		opts.duration = 2 * time.Second
	}
	opts.concurrency = max(opts.concurrency, 1)
	res := HandshakeResult{Network: opts.network, Concurrency: opts.concurrency}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(opts.duration)
	for range opts.concurrency {
		wg.Go(func() {
			for {
				d, err := s.Handshake(ctx, opts.network)
				if err != nil {
					cancel(err)
					return
				}
				mu.Lock()
				res.Latencies = append(res.Latencies, d)
				mu.Unlock()
				if time.Now().After(deadline) || ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// HandshakeConfig is an interleaved B2 comparison.
type HandshakeConfig struct {
	// Networks are compared; the first round runs them in this order, each
	// later one starts with the next. Nil means QUIC, then TCP.
	Networks []core.Network
	// Concurrency lists the worker counts; nil means 1 (latency) and 4
	// (rate under load).
	Concurrency []int
	// Duration is each run's length; zero means 2s.
	Duration time.Duration
	// Runs is how many rounds run; zero means 5.
	Runs int
	// Progress, if set, is called after each run, from the calling
	// goroutine.
	Progress func(HandshakeResult)
}

// HandshakeReport holds every run of a comparison.
type HandshakeReport struct {
	// Config is the comparison's configuration, defaults filled in.
	Config HandshakeConfig
	// runs are in the order they ran.
	runs []HandshakeResult
}

// Rate summarizes the handshakes per second of network at concurrency.
func (r *HandshakeReport) Rate(network core.Network, concurrency int) harness.Stats {
	var v []float64
	for _, run := range r.runs {
		if run.Network == network && run.Concurrency == concurrency {
			v = append(v, run.Rate())
		}
	}
	return harness.Summarize(v)
}

// Latencies returns every connect-to-first-byte time of network at
// concurrency, pooled over the runs.
func (r *HandshakeReport) Latencies(network core.Network, concurrency int) []time.Duration {
	var all []time.Duration
	for _, run := range r.runs {
		if run.Network == network && run.Concurrency == concurrency {
			all = append(all, run.Latencies...)
		}
	}
	return all
}

// warmupHandshakes is the untimed handshakes per network before a
// comparison.
const warmupHandshakes = 20

// CompareHandshakes starts a [setupServer] and runs cfg.Runs rounds; each
// round makes one run per concurrency and network, the networks' order
// rotating from round to round. Each network
// first makes a few untimed handshakes. It stops at the first failure,
// returning what it measured so far.
func CompareHandshakes(ctx context.Context, cfg HandshakeConfig) (*HandshakeReport, error) {
	if cfg.Networks == nil {
		cfg.Networks = []core.Network{core.NetworkQUIC, core.NetworkTCP}
	}
	if cfg.Concurrency == nil {
		cfg.Concurrency = []int{1, 4}
	}
	if cfg.Duration == 0 {
		cfg.Duration = 2 * time.Second
	}
	if cfg.Runs == 0 {
		cfg.Runs = 5
	}
	rep := &HandshakeReport{Config: cfg}
	srv, err := startSetupServer()
	if err != nil {
		return rep, err
	}
	defer srv.Close()
	for _, n := range cfg.Networks {
		for range warmupHandshakes {
			if _, err := srv.Handshake(ctx, n); err != nil {
				return rep, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	for run := 1; run <= cfg.Runs; run++ {
		for _, c := range cfg.Concurrency {
			for i := range cfg.Networks {
				n := cfg.Networks[(i+run-1)%len(cfg.Networks)]
				res, err := srv.run(ctx, handshakeOptions{network: n, duration: cfg.Duration, concurrency: c})
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
