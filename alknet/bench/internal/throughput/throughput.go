package throughput

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/bare"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/perf"
	"github.com/quic-go/quic-go"
)

// Transport is a path a B1 throughput run takes.
type Transport string

// The B1 transports.
const (
	// Router is alknet/perf served by core.Endpoint and its router over
	// QUIC, dialed with core.Dialer.
	Router Transport = "router"
	// Bare is the alknet/perf wire protocol on a plain quic.Listener with
	// the same TLS and QUIC settings: no endpoint, router or access check.
	Bare Transport = "bare"
	// TCP is the alknet/perf wire protocol on crypto/tls (TLS 1.3) over
	// net.TCPConn, without core; each stream is its own connection.
	TCP Transport = "tcp"
	// RouterTCP is alknet/perf served by core.Endpoint over TCP+TLS 1.3,
	// dialed with core.Dialer; each stream is its own connection.
	RouterTCP Transport = "router-tcp"
)

// allTransports returns every transport in the order runs interleave them.
func allTransports() []Transport { return []Transport{Router, Bare, TCP, RouterTCP} }

// ParseTransport returns the transport named s.
func ParseTransport(s string) (Transport, error) {
	for _, t := range allTransports() {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("bench: unknown transport %q", s)
}

// isQUIC reports whether t runs over QUIC.
func (t Transport) isQUIC() bool { return t == Router || t == Bare }

// throughputOptions is one B1 transfer.
type throughputOptions struct {
	// bytes is uploaded and then downloaded, split evenly across the
	// streams. Zero transfers nothing but the requests.
	bytes int64
	// streams is the number of parallel streams; zero means 1.
	streams int
}

// PathInfo tells how a QUIC transport's sockets were set up.
type PathInfo struct {
	// ClientGSO and ServerGSO are quic-go's ConnectionState().GSO on each
	// side of the last connection: whether it sent with UDP generic
	// segmentation offload.
	ClientGSO, ServerGSO bool
	// Client and Server are the UDP socket buffers, read from the live
	// sockets after quic-go set them up.
	Client, Server harness.SocketBuffers
}

// target is a running perf server for one transport, on 127.0.0.1, and the
// client that reaches it. Its methods must not be called concurrently.
type target struct {
	transport Transport
	clientKey ed25519.PrivateKey
	addr      string

	ep      *harness.Endpoint    // Router, RouterTCP
	quicSrv *bare.BareQUICServer // Bare
	tlsSrv  *bare.BareTLSServer  // TCP

	serverGSO atomic.Bool // Router: recorded by gsoProbe
	info      PathInfo
}

// startTarget starts the server for tr with fresh keys. The caller stops it
// with Close.
func startTarget(tr Transport) (*target, error) {
	t := &target{transport: tr}
	switch tr {
	case Router, RouterTCP:
		ep, err := harness.StartEndpoint(gsoProbe{perf.New(perf.Config{}), &t.serverGSO})
		if err != nil {
			return nil, err
		}
		t.ep, t.addr, t.clientKey = ep, ep.Addr, ep.ClientKey
		if tr == Router {
			t.info.Server = harness.UDPSocketBuffers(ep.Port)
		}
	case Bare, TCP:
		key, err := harness.NewKey()
		if err != nil {
			return nil, err
		}
		if t.clientKey, err = harness.NewKey(); err != nil {
			return nil, err
		}
		if tr == Bare {
			if t.quicSrv, err = bare.ListenBareQUIC(key); err != nil {
				return nil, err
			}
			t.addr = t.quicSrv.Addr()
			port := t.quicSrv.UDP.LocalAddr().(*net.UDPAddr).Port
			t.info.Server = harness.UDPSocketBuffers(port)
		} else {
			if t.tlsSrv, err = bare.ListenBareTLS(key); err != nil {
				return nil, err
			}
			t.addr = t.tlsSrv.Addr()
		}
	default:
		return nil, fmt.Errorf("bench: unknown transport %q", tr)
	}
	return t, nil
}

// pathInfo returns the socket set-up seen on the last QUIC run; it is the
// zero value for TCP transports.
func (t *target) pathInfo() PathInfo {
	info := t.info
	if t.transport == Bare {
		info.ServerGSO = t.quicSrv.GSO.Load()
	} else {
		info.ServerGSO = t.serverGSO.Load()
	}
	return info
}

// ThroughputResult is one measured transfer.
type ThroughputResult struct {
	// Result is what perf measured per direction. Its times are each the
	// slowest stream's, so with several streams whose phases do not
	// overlap (one still uploading while another downloads) its
	// throughputs overstate; use Mbps to compare.
	perf.Result
	// wall runs from the start of the transfer (connections already
	// dialed) until every stream has its last byte back.
	wall time.Duration
}

// Mbps is the throughput over the wall-clock time, both directions
// counted, in megabits per second.
func (r ThroughputResult) Mbps() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(r.Uploaded+r.Downloaded) * 8 / r.wall.Seconds() / 1e6
}

// run performs one transfer and returns what it measured. The connection
// (QUIC) or connections, one per stream (TCP), are dialed first and not
// timed. It blocks until the transfer ends or ctx does.
func (t *target) run(ctx context.Context, opts throughputOptions) (ThroughputResult, error) {
	streams := max(opts.streams, 1)
	per := opts.bytes / int64(streams)
	open, done, err := t.connect(ctx, streams)
	if err != nil {
		return ThroughputResult{}, err
	}
	defer done()
	start := time.Now()
	res, err := perf.Run(ctx, open, perf.Options{Upload: per, Download: per, Streams: streams})
	wall := time.Since(start)
	if err != nil {
		return ThroughputResult{Result: res}, fmt.Errorf("bench: %s: %w", t.transport, err)
	}
	return ThroughputResult{Result: res, wall: wall}, nil
}

// connect dials what a run of streams streams needs and returns the stream
// opener and what ends the run.
func (t *target) connect(ctx context.Context, streams int) (open func(context.Context) (core.Stream, error), done func(), err error) {
	switch t.transport {
	case Router:
		c, err := t.ep.Dialer(core.NetworkQUIC).Dial(ctx, t.addr, perf.ALPN)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: router dial: %w", err)
		}
		if q, ok := c.(core.QUICConn); ok {
			t.noteClient(q.QUIC())
		}
		return c.OpenStream, func() { _ = c.CloseWithError(core.CodeNoError, "") }, nil
	case Bare:
		qc, err := bare.DialBareQUIC(ctx, t.clientKey, t.addr)
		if err != nil {
			return nil, nil, err
		}
		t.noteClient(qc)
		open := func(ctx context.Context) (core.Stream, error) {
			s, err := qc.OpenStreamSync(ctx)
			if err != nil {
				return nil, err
			}
			return bare.BareQUICStream{Stream: s}, nil
		}
		return open, func() { _ = qc.CloseWithError(0, "") }, nil
	case RouterTCP:
		conns := make([]core.Conn, 0, streams)
		ss := make(chan core.Stream, streams)
		done := func() {
			for _, c := range conns {
				_ = c.CloseWithError(core.CodeNoError, "")
			}
		}
		for range streams {
			c, err := t.ep.Dialer(core.NetworkTCP).Dial(ctx, t.addr, perf.ALPN)
			if err != nil {
				done()
				return nil, nil, fmt.Errorf("bench: router-tcp dial: %w", err)
			}
			conns = append(conns, c)
			s, err := c.OpenStream(ctx)
			if err != nil {
				done()
				return nil, nil, fmt.Errorf("bench: router-tcp stream: %w", err)
			}
			ss <- s
		}
		return popStream(ss), done, nil
	default: // TCP
		ss := make(chan core.Stream, streams)
		done := func() {
			close(ss)
			for s := range ss {
				s.Close()
			}
		}
		for range streams {
			s, err := bare.DialBareTLS(ctx, t.clientKey, t.addr)
			if err != nil {
				done()
				return nil, nil, err
			}
			ss <- s
		}
		return popStream(ss), done, nil
	}
}

// popStream returns an opener handing out the pre-dialed streams in ss.
// perf.Run closes each stream it takes.
func popStream(ss chan core.Stream) func(context.Context) (core.Stream, error) {
	return func(context.Context) (core.Stream, error) {
		select {
		case s := <-ss:
			return s, nil
		default:
			return nil, errors.New("bench: more streams opened than dialed")
		}
	}
}

// noteClient records the client side's GSO state and socket buffers.
func (t *target) noteClient(qc *quic.Conn) {
	t.info.ClientGSO = qc.ConnectionState().GSO
	port := qc.LocalAddr().(*net.UDPAddr).Port
	t.info.Client = harness.UDPSocketBuffers(port)
}

// Close stops the server.
func (t *target) Close() error {
	switch {
	case t.ep != nil:
		return t.ep.Close()
	case t.quicSrv != nil:
		return t.quicSrv.Close()
	case t.tlsSrv != nil:
		return t.tlsSrv.Close()
	}
	return nil
}

// gsoProbe hands connections to a handler, recording quic-go's GSO state of
// the QUIC ones. It costs one type assertion per connection.
type gsoProbe struct {
	core.Handler
	gso *atomic.Bool
}

// Serve implements core.Handler.
func (p gsoProbe) Serve(ctx context.Context, c core.Conn) error {
	if q, ok := c.(core.QUICConn); ok {
		p.gso.Store(q.QUIC().ConnectionState().GSO)
	}
	return p.Handler.Serve(ctx, c)
}

// ThroughputConfig is an interleaved B1 comparison.
type ThroughputConfig struct {
	// Transports are compared; the first round runs them in this order,
	// each later one starts with the next. Nil means AllTransports().
	Transports []Transport
	// Streams are the stream counts; nil means 1 and 4.
	Streams []int
	// Bytes is each transfer's size in each direction, split across its
	// streams. Zero means 256 MiB.
	Bytes int64
	// Runs is how many rounds run; zero means 5.
	Runs int
	// timeout bounds each transfer; zero means 5 minutes.
	timeout time.Duration
	// Progress, if set, is called after each transfer, from the calling
	// goroutine.
	Progress func(ThroughputSample)
}

// ThroughputSample is one measured transfer.
type ThroughputSample struct {
	// Run counts rounds from 1.
	Run       int
	Transport Transport
	Streams   int
	Result    ThroughputResult
}

// ThroughputReport holds every transfer of a comparison.
type ThroughputReport struct {
	// Config is the comparison's configuration, defaults filled in.
	Config ThroughputConfig
	// samples are in the order they ran.
	samples []ThroughputSample
	// Paths holds the socket set-up of each QUIC transport.
	Paths map[Transport]PathInfo
}

// Total summarizes the wall-clock throughput (Mbit/s, both directions) of
// tr with streams; see [ThroughputResult.Mbps].
func (r *ThroughputReport) Total(tr Transport, streams int) harness.Stats {
	return r.summarize(tr, streams, ThroughputResult.Mbps)
}

// Upload summarizes perf's upload throughput (Mbit/s) of tr with streams.
func (r *ThroughputReport) Upload(tr Transport, streams int) harness.Stats {
	return r.summarize(tr, streams, ThroughputResult.UploadMbps)
}

// Download summarizes perf's download throughput (Mbit/s) of tr with
// streams.
func (r *ThroughputReport) Download(tr Transport, streams int) harness.Stats {
	return r.summarize(tr, streams, ThroughputResult.DownloadMbps)
}

// PairedRatio summarizes, over the rounds, the ratio of a's to b's
// wall-clock throughput with streams within the same round. Runs next to
// each other share the machine's slow and fast phases, so this ratio is
// steadier than the ratio of medians.
func (r *ThroughputReport) PairedRatio(a, b Transport, streams int) harness.Stats {
	return harness.PairedRatio(r.samples, a, b, func(s ThroughputSample) (int, Transport, float64, bool) {
		return s.Run, s.Transport, s.Result.Mbps(), s.Streams == streams
	})
}

func (r *ThroughputReport) summarize(tr Transport, streams int, f func(ThroughputResult) float64) harness.Stats {
	var v []float64
	for _, s := range r.samples {
		if s.Transport == tr && s.Streams == streams {
			v = append(v, f(s.Result))
		}
	}
	return harness.Summarize(v)
}

// warmupBytes caps the untimed transfer each variant makes first.
const warmupBytes = 16 << 20

// CompareThroughput starts a [target] per transport and runs cfg.Runs
// rounds; each round makes one transfer per stream count and transport, so
// that slow phases of a noisy machine hit every variant alike. The order of
// the transports rotates from round to round.
// Each variant first makes one untimed warm-up transfer. It stops at the
// first failure, returning what it measured so far.
func CompareThroughput(ctx context.Context, cfg ThroughputConfig) (*ThroughputReport, error) {
	if cfg.Transports == nil {
		cfg.Transports = allTransports()
	}
	if cfg.Streams == nil {
		cfg.Streams = []int{1, 4}
	}
	if cfg.Bytes == 0 {
		cfg.Bytes = 256 << 20
	}
	if cfg.Runs == 0 {
		cfg.Runs = 5
	}
	if cfg.timeout == 0 {
		cfg.timeout = 5 * time.Minute
	}
	rep := &ThroughputReport{Config: cfg, Paths: make(map[Transport]PathInfo)}
	targets := make([]*target, 0, len(cfg.Transports))
	defer func() {
		for _, t := range targets {
			_ = t.Close()
		}
	}()
	for _, tr := range cfg.Transports {
		t, err := startTarget(tr)
		if err != nil {
			return rep, err
		}
		targets = append(targets, t)
	}
	transfer := func(t *target, streams int, bytes int64) (ThroughputResult, error) {
		tctx, cancel := context.WithTimeout(ctx, cfg.timeout)
		defer cancel()
		return t.run(tctx, throughputOptions{bytes: bytes, streams: streams})
	}
	for _, n := range cfg.Streams {
		for _, t := range targets {
			if _, err := transfer(t, n, min(cfg.Bytes, warmupBytes)); err != nil {
				return rep, fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	for run := 1; run <= cfg.Runs; run++ {
		for _, n := range cfg.Streams {
			for i := range targets {
				// Rotate the order each round, so that no transport always
				// runs first, right after another's teardown.
				t := targets[(i+run-1)%len(targets)]
				res, err := transfer(t, n, cfg.Bytes)
				if err != nil {
					return rep, err
				}
				s := ThroughputSample{Run: run, Transport: t.transport, Streams: n, Result: res}
				rep.samples = append(rep.samples, s)
				if cfg.Progress != nil {
					cfg.Progress(s)
				}
			}
		}
	}
	for _, t := range targets {
		if t.transport.isQUIC() {
			rep.Paths[t.transport] = t.pathInfo()
		}
	}
	return rep, nil
}
