package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/dnsbench"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// Flags of the dns scenario (-only dns): alknet against CoreDNS on UDP,
// DoQ against DoT on alknet; its rounds are -runs.
var (
	dnsDuration = flag.Duration("dns-duration", 5*time.Second, "dns: length of each run (dnsperf: whole seconds)")
	dnsClients  = flag.Int("dns-clients", 4, "dns: dnsperf clients (-c) and the Go generator's connections")
	dnsInflight = flag.Int("dns-inflight", 16, "dns: queries outstanding per client")
	dnsperfBin  = flag.String("dnsperf", "", "dns: the dnsperf binary; empty looks in PATH (none: the Go generator measures UDP)")
	dnsProfile  = flag.String("dns-cpuprofile", "", "dns: write a CPU profile of the runs to this file; the Go generator's samples carry the label dns-client=1")
)

// dnsScenario runs the DNS comparison and prints its section.
func dnsScenario(ctx context.Context, w io.Writer, runs int) (err error) {
	if *dnsProfile != "" {
		f, err := os.Create(*dnsProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			err = errors.Join(err, f.Close())
		}()
	}
	rep, err := dnsbench.CompareDNS(ctx, dnsbench.DNSConfig{Dnsperf: *dnsperfBin, Duration: *dnsDuration, Runs: runs,
		Clients: *dnsClients, Inflight: *dnsInflight,
		Progress: func(r dnsbench.DNSResult) {
			fmt.Fprintf(os.Stderr, "dns run %d %-24s: %7.0f queries/s, p50 %v, p99 %v, lost %d, cpu %v/query\n", r.Run, r.Load, r.Rate(),
				r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Lost, r.CPUPerQuery().Round(100*time.Nanosecond))
		}})
	printDNS(w, rep, err)
	return err
}

func printDNS(w io.Writer, rep *dnsbench.DNSReport, err error) {
	cfg := rep.Config
	fmt.Fprintf(w, "## DNS: alknet vs CoreDNS, DoQ vs DoT\n\n")
	fmt.Fprintf(w, "One small authoritative zone (12-query mix: answers, a CNAME chased in the zone, NODATA, NXDOMAIN) served "+
		"in this process by alknet's dns.Server (classic UDP listener; doq and dot on a core.Endpoint) and by CoreDNS "+
		"(file plugin, built into the bench binary); both checked to answer every query alike before the runs. "+
		"%v per run, %d interleaved rounds, %d clients × %d queries outstanding. "+
		"Queries/s: median of runs (min–max); p50 and p99: median of the runs' percentiles; "+
		"CPU/query: this process's CPU time per answered query, median of runs (with dnsperf the server's alone, "+
		"with the Go generator client and server).", cfg.Duration, cfg.Runs, cfg.Clients, cfg.Inflight)
	if rep.DnsperfVersion != "" {
		fmt.Fprintf(w, " dnsperf: %s, with -v (one line per query, for the percentiles).", rep.DnsperfVersion)
	}
	fmt.Fprintf(w, "\n\n")
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %s\n\n", firstLines(err.Error(), 30))
	}
	fmt.Fprintf(w, "| variant | queries/s | p50 | p99 | lost | CPU/query (this process) |\n|---|---:|---:|---:|---:|---:|\n")
	for _, l := range cfg.Loads {
		r := rep.Rate(l)
		fmt.Fprintf(w, "| %s | %.0f (%.0f–%.0f) | %s | %s | %d | %s |\n", l, r.Median, r.Min, r.Max,
			seconds(rep.P50(l), time.Microsecond), seconds(rep.P99(l), time.Microsecond), rep.Lost(l), seconds(rep.CPUPerQuery(l), 100*time.Nanosecond))
	}
	fmt.Fprintf(w, "\n| ratio | goal | queries/s: per-round ratios, median (min–max); ratio of medians | p99 ratio | CPU/query ratio |\n|---|---|---:|---:|---:|\n")
	udp := dnsbench.GoLoad
	if rep.DnsperfVersion != "" {
		udp = dnsbench.Dnsperf
	}
	type goal struct {
		name   string
		target float64
	}
	var goals []string
	for _, p := range []struct {
		a, b dnsbench.DNSLoad
		goal *goal // nil: reported, not judged
	}{
		{dnsbench.DNSLoad{Server: dnsbench.AlknetDNS, Transport: dnsbench.UDP, Tool: udp}, dnsbench.DNSLoad{Server: dnsbench.CoreDNS, Transport: dnsbench.UDP, Tool: udp}, &goal{"dns-udp-vs-coredns", 1.0}},
		{dnsbench.DNSLoad{Server: dnsbench.AlknetDNS, Transport: dnsbench.DoQ, Tool: dnsbench.GoLoad}, dnsbench.DNSLoad{Server: dnsbench.AlknetDNS, Transport: dnsbench.DoT, Tool: dnsbench.GoLoad}, &goal{"dns-doq-vs-dot", 0.6}},
		{dnsbench.DNSLoad{Server: dnsbench.AlknetDNS, Transport: dnsbench.DoQ, Tool: dnsbench.GoLoad}, dnsbench.DNSLoad{Server: dnsbench.AlknetDNS, Transport: dnsbench.DoT, Tool: dnsbench.Dnsperf}, nil},
	} {
		pr := rep.RateRatio(p.a, p.b)
		if pr.N == 0 {
			continue
		}
		target := "(tools differ)"
		if p.goal != nil {
			target = fmt.Sprintf("≥ %g", p.goal.target)
			var b strings.Builder
			harness.WriteGoal(&b, p.goal.name, "loopback", pr.Median, ">=", p.goal.target)
			goals = append(goals, b.String())
		}
		fmt.Fprintf(w, "| %s / %s | %s | %.3f (%.3f–%.3f); %s | %s | %s |\n", p.a, p.b, target, pr.Median, pr.Min, pr.Max,
			ratio(rep.Rate(p.a), rep.Rate(p.b)), ratio(rep.P99(p.a), rep.P99(p.b)), ratio(rep.CPUPerQuery(p.a), rep.CPUPerQuery(p.b)))
	}
	fmt.Fprintln(w)
	// Last, one line per goal (issue 18's bench interface): the median of
	// the per-round queries/s ratios.
	for _, g := range goals {
		fmt.Fprint(w, g)
	}
}

// seconds renders the median of a summary held in seconds, rounded to r.
func seconds(s harness.Stats, r time.Duration) string {
	if s.N == 0 {
		return "–"
	}
	return time.Duration(s.Median * float64(time.Second)).Round(r).String()
}
