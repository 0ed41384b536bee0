package dnsbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// DNSServer is a DNS server of the comparison.
type DNSServer string

// The DNS servers, both in this process, serving the same zone file.
const (
	// AlknetDNS is alknet's dns.Server: classic UDP through
	// (*dns.Server).ListenClassic, doq and dot through core.Endpoint.
	AlknetDNS DNSServer = "alknet"
	// CoreDNS is CoreDNS with the file plugin (and bind, minimal), built
	// into the bench binary.
	CoreDNS DNSServer = "coredns"
)

// DNSTransport is how queries travel.
type DNSTransport string

// The DNS transports.
const (
	// UDP is classic DNS over UDP (RFC 1035).
	UDP DNSTransport = "udp"
	// DoT is DNS over TLS (RFC 7858), pipelined on each connection.
	DoT DNSTransport = "dot"
	// DoQ is DNS over QUIC (RFC 9250), one stream per query.
	DoQ DNSTransport = "doq"
)

// DNSTool is the load generator.
type DNSTool string

// The load generators.
const (
	// Dnsperf is DNS-OARC's dnsperf, a separate process (UDP and DoT).
	Dnsperf DNSTool = "dnsperf"
	// GoLoad is this package's generator, in this process: core.Dialer
	// (quic-go, crypto/tls) for DoQ and DoT, net.UDPConn for UDP.
	GoLoad DNSTool = "go"
)

// DNSLoad is one variant of the comparison: a server, a transport and a
// load generator.
type DNSLoad struct {
	// Server answers; CoreDNS is served on UDP only.
	Server DNSServer
	// Transport carries the queries.
	Transport DNSTransport
	// Tool generates the load; dnsperf has no DoQ mode.
	Tool DNSTool
}

// String returns "server transport (tool)".
func (l DNSLoad) String() string { return fmt.Sprintf("%s %s (%s)", l.Server, l.Transport, l.Tool) }

// dnsLoads returns the variants of the comparison: with dnsperf, UDP on
// both servers and DoT on alknet by dnsperf, then DoT and DoQ on alknet by
// the Go generator; without it, UDP on both servers by the Go generator
// instead of dnsperf.
func dnsLoads(withDnsperf bool) []DNSLoad {
	tool := GoLoad
	if withDnsperf {
		tool = Dnsperf
	}
	loads := []DNSLoad{{AlknetDNS, UDP, tool}, {CoreDNS, UDP, tool}}
	if withDnsperf {
		loads = append(loads, DNSLoad{AlknetDNS, DoT, Dnsperf})
	}
	return append(loads, DNSLoad{AlknetDNS, DoT, GoLoad}, DNSLoad{AlknetDNS, DoQ, GoLoad})
}

// DNSResult is one run of one variant.
type DNSResult struct {
	// Run numbers the round, from 1.
	Run  int
	Load DNSLoad
	// queries is the number of queries answered (correctly: the Go
	// generator checks ID, QR and RCODE of each answer; dnsperf counts
	// completed queries), Lost the number unanswered within the timeout.
	queries, Lost int
	// elapsed is the run's wall-clock time.
	elapsed time.Duration
	// P50 and P99 are latency percentiles over the answered queries.
	P50, P99 time.Duration
	// cpu is the CPU time (user and system) of this process during the
	// run: both servers, plus the Go generator when it is the tool; 0 if
	// unknown. dnsperf runs in its own process, so with it CPU is the
	// server's alone.
	cpu time.Duration
}

// CPUPerQuery returns r.CPU per answered query.
func (r DNSResult) CPUPerQuery() time.Duration {
	if r.queries == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.queries)
}

// Rate returns answered queries per second.
func (r DNSResult) Rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.queries) / r.elapsed.Seconds()
}

// DNSConfig is an interleaved DNS comparison.
type DNSConfig struct {
	// Loads are the variants; the first round runs them in this order,
	// each later one starts with the next. Nil means DNSLoads(dnsperf
	// found).
	Loads []DNSLoad
	// Dnsperf is the dnsperf binary; empty looks it up in PATH.
	Dnsperf string
	// Duration is each run's length; zero means 5s. dnsperf takes whole
	// seconds (rounded up).
	Duration time.Duration
	// Runs is how many rounds run; zero means 5.
	Runs int
	// Clients is dnsperf's -c and the Go generator's connections (UDP:
	// sockets per in-flight slot); zero means 4.
	Clients int
	// Inflight is the queries outstanding per client (dnsperf: -q is
	// Clients×Inflight in all); zero means 16.
	Inflight int
	// Progress, if set, is called after each run, from the calling
	// goroutine.
	Progress func(DNSResult)
}

// DNSReport holds every run of a DNS comparison.
type DNSReport struct {
	// Config is the comparison's configuration, defaults filled in.
	Config DNSConfig
	// DnsperfVersion is dnsperf's version line; empty without dnsperf.
	DnsperfVersion string
	// runs are in the order they ran.
	runs []DNSResult
}

// runsOf returns f of every run of l.
func (r *DNSReport) runsOf(l DNSLoad, f func(DNSResult) float64) []float64 {
	var v []float64
	for _, run := range r.runs {
		if run.Load == l {
			v = append(v, f(run))
		}
	}
	return v
}

// Rate summarizes the queries per second of l.
func (r *DNSReport) Rate(l DNSLoad) harness.Stats {
	return harness.Summarize(r.runsOf(l, DNSResult.Rate))
}

// P50 and P99 summarize l's per-run latency percentiles, in seconds.
func (r *DNSReport) P50(l DNSLoad) harness.Stats {
	return harness.Summarize(r.runsOf(l, func(d DNSResult) float64 { return d.P50.Seconds() }))
}

// CPUPerQuery summarizes l's per-run CPU time per query, in seconds.
func (r *DNSReport) CPUPerQuery(l DNSLoad) harness.Stats {
	return harness.Summarize(r.runsOf(l, func(d DNSResult) float64 { return d.CPUPerQuery().Seconds() }))
}

// P99 summarizes l's per-run 99th latency percentiles, in seconds.
func (r *DNSReport) P99(l DNSLoad) harness.Stats {
	return harness.Summarize(r.runsOf(l, func(d DNSResult) float64 { return d.P99.Seconds() }))
}

// Lost returns the queries l lost over all runs.
func (r *DNSReport) Lost(l DNSLoad) int {
	n := 0
	for _, run := range r.runs {
		if run.Load == l {
			n += run.Lost
		}
	}
	return n
}

// RateRatio summarizes, over the rounds, the ratio of a's queries per
// second to b's in the same round.
func (r *DNSReport) RateRatio(a, b DNSLoad) harness.Stats {
	return harness.PairedRatio(r.runs, a, b, func(run DNSResult) (int, DNSLoad, float64, bool) {
		return run.Run, run.Load, run.Rate(), true
	})
}

// dnsTimeout bounds one query of the Go generator and of dnsperf.
const dnsTimeout = 2 * time.Second

// dnsWarmup is the untimed run each variant makes before the rounds.
const dnsWarmup = 300 * time.Millisecond

// CompareDNS serves one zone from alknet and CoreDNS in this process,
// checks that both answer every query of the mix alike, and runs cfg.Runs
// rounds, one run per variant each, the order rotating from round to round,
// after an untimed warm-up of each Go-generated variant. It stops at the
// first failure, returning what it measured so far.
func CompareDNS(ctx context.Context, cfg DNSConfig) (rep *DNSReport, err error) {
	if cfg.Dnsperf == "" {
		cfg.Dnsperf, _ = exec.LookPath("dnsperf")
	}
	if cfg.Loads == nil {
		cfg.Loads = dnsLoads(cfg.Dnsperf != "")
	}
	if cfg.Duration == 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.Runs == 0 {
		cfg.Runs = 5
	}
	if cfg.Clients == 0 {
		cfg.Clients = 4
	}
	if cfg.Inflight == 0 {
		cfg.Inflight = 16
	}
	rep = &DNSReport{Config: cfg}
	for _, l := range cfg.Loads {
		if err := l.valid(cfg.Dnsperf != ""); err != nil {
			return rep, err
		}
	}
	if cfg.Dnsperf != "" {
		if rep.DnsperfVersion, err = dnsperfVersion(ctx, cfg.Dnsperf); err != nil {
			return rep, err
		}
	}
	rig, err := startDNSRig(ctx)
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, rig.close()) }()
	for _, l := range cfg.Loads {
		if l.Tool != GoLoad {
			continue
		}
		if _, err := rig.run(ctx, cfg, l, dnsWarmup); err != nil {
			return rep, fmt.Errorf("warm-up %s: %w", l, err)
		}
	}
	for run := 1; run <= cfg.Runs; run++ {
		for i := range cfg.Loads {
			l := cfg.Loads[(i+run-1)%len(cfg.Loads)]
			cpu := processCPU()
			res, err := rig.run(ctx, cfg, l, cfg.Duration)
			res.Run, res.Load, res.cpu = run, l, processCPU()-cpu
			if err != nil {
				return rep, fmt.Errorf("%s, run %d: %w", l, run, err)
			}
			rep.runs = append(rep.runs, res)
			if cfg.Progress != nil {
				cfg.Progress(res)
			}
		}
	}
	return rep, nil
}

// valid reports whether the comparison can run l.
func (l DNSLoad) valid(haveDnsperf bool) error {
	switch {
	case l.Server != AlknetDNS && l.Server != CoreDNS:
		return fmt.Errorf("bench: dns: unknown server %q", l.Server)
	case l.Server == CoreDNS && l.Transport != UDP:
		return fmt.Errorf("bench: dns: %s: CoreDNS is served on UDP only", l)
	case l.Transport != UDP && l.Transport != DoT && l.Transport != DoQ:
		return fmt.Errorf("bench: dns: unknown transport %q", l.Transport)
	case l.Tool == Dnsperf && l.Transport == DoQ:
		return fmt.Errorf("bench: dns: %s: dnsperf does not speak DoQ", l)
	case l.Tool == Dnsperf && !haveDnsperf:
		return fmt.Errorf("bench: dns: %s: dnsperf not found", l)
	case l.Tool != Dnsperf && l.Tool != GoLoad:
		return fmt.Errorf("bench: dns: unknown tool %q", l.Tool)
	}
	return nil
}

// dnsRig is both servers and the query mix.
type dnsRig struct {
	dir         string
	queriesFile string
	queries     []dnsQuery
	alknet      *alknetDNS
	coredns     *coreDNS
}

// startDNSRig writes the zone and query files, starts both servers and
// checks that they answer alike.
func startDNSRig(ctx context.Context) (rig *dnsRig, err error) {
	rig = &dnsRig{}
	if rig.dir, err = os.MkdirTemp("", "alknet-bench-dns-"); err != nil {
		return nil, fmt.Errorf("bench: dns: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, rig.close())
			rig = nil
		}
	}()
	zone, queries, err := writeDNSFiles(rig.dir)
	if err != nil {
		return rig, err
	}
	rig.queriesFile = queries
	if rig.queries, err = parseDNSQueries(dnsQueries); err != nil {
		return rig, err
	}
	if rig.alknet, err = startAlknetDNS(zone); err != nil {
		return rig, err
	}
	if rig.coredns, err = startCoreDNS(zone); err != nil {
		return rig, err
	}
	return rig, checkSameAnswers(ctx, rig.queries, rig.alknet.classicAddr, rig.coredns.addr)
}

// close stops the servers and removes the files.
func (r *dnsRig) close() error {
	var errs []error
	if r.alknet != nil {
		errs = append(errs, r.alknet.close())
	}
	if r.coredns != nil {
		errs = append(errs, r.coredns.close())
	}
	errs = append(errs, os.RemoveAll(r.dir))
	return errors.Join(errs...)
}

// run makes one run of l lasting d.
func (r *dnsRig) run(ctx context.Context, cfg DNSConfig, l DNSLoad, d time.Duration) (DNSResult, error) {
	addr := r.alknet.classicAddr
	if l.Server == CoreDNS {
		addr = r.coredns.addr
	}
	if l.Tool == Dnsperf {
		if l.Transport == DoT {
			addr = r.alknet.ep.Addr().String()
		}
		return runDnsperf(ctx, dnsperfRun{bin: cfg.Dnsperf, addr: addr, dot: l.Transport == DoT, queries: r.queriesFile,
			duration: d, clients: cfg.Clients, inflight: cfg.Clients * cfg.Inflight})
	}
	w := dnsWork{queries: r.queries, duration: d, conns: cfg.Clients, inflight: cfg.Inflight, timeout: dnsTimeout}
	load := udpLoad
	switch l.Transport {
	case DoT:
		load, addr = dotLoad, r.alknet.node
	case DoQ:
		load, addr = doqLoad, r.alknet.node
	}
	var res DNSResult
	var err error
	pprof.Do(ctx, pprof.Labels(dnsClientLabel, "1"), func(ctx context.Context) { res, err = load(ctx, addr, w) })
	return res, err
}

// dnsClientLabel is the pprof label that the Go generator's goroutines
// carry, and with them the goroutines they start (quic-go's client
// connections): `go tool pprof -tagignore dns-client=1` shows the servers'
// share of a CPU profile, -tagfocus the generator's.
const dnsClientLabel = "dns-client"
