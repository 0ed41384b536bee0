package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/callbench"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// calls runs the call scenario: alknet against grpc-go and NATS, routed
// against direct calls, and subscription throughput, each interleaved over
// runs rounds of duration per run.
func calls(ctx context.Context, w io.Writer, runs int, duration time.Duration) error {
	progress := callProgress("call")
	rep, err := callbench.CompareCalls(ctx, callbench.CallConfig{Duration: duration, Runs: runs, Progress: progress})
	printCalls(w, rep, err)
	errs := []error{err}

	rrep, err := callbench.CompareCalls(ctx, callbench.CallConfig{Systems: callbench.RouteSystems(), Concurrency: []int{1, 16},
		Duration: duration, Runs: runs, Progress: progress})
	printRoute(w, rrep, err)
	errs = append(errs, err)

	// Short subscriptions (the rows of earlier runs), then a few long
	// ones, which a slow consumer back-pressures on every transport.
	var sreps []*callbench.SubscribeReport
	for _, sc := range []struct{ events, max int }{{callbench.DefaultSubscribeEvents, 0}, {longEvents, longPerRun}} {
		srep, err := callbench.CompareSubscriptions(ctx, callbench.SubscribeConfig{Duration: duration, Runs: runs, Events: sc.events, Max: sc.max,
			Progress: func(r callbench.SubscribeResult) {
				fmt.Fprintf(os.Stderr, "subscribe run %d %-10s x%d events: %8.0f events/s (%d of %d subscriptions failed)\n",
					r.Run, r.System, sc.events, r.Rate(), r.Failed, r.Subscriptions)
			}})
		sreps = append(sreps, srep)
		errs = append(errs, err)
	}
	printSubscriptions(w, sreps, errors.Join(errs[2:]...))
	callGoals(w, rep, rrep)
	return errors.Join(errs...)
}

// goalCallers is the concurrency the call goals are judged at.
const goalCallers = 16

// callGoals prints issue 18's call goals, last: the per-round median
// ratios at goalCallers callers, against grpc-go and against direct calls.
func callGoals(w io.Writer, rep, rrep *callbench.CallReport) {
	for _, g := range []struct {
		name   string
		r      harness.Stats
		op     string
		target float64
	}{
		{"call-p50-quic-vs-grpc", rep.P50Ratio(callbench.AlknetQUIC, callbench.GRPC, goalCallers), "<=", 1.2},
		{"call-p50-tcp-vs-grpc", rep.P50Ratio(callbench.AlknetTCP, callbench.GRPC, goalCallers), "<=", 1.2},
		{"call-rate-quic-vs-grpc", rep.RateRatio(callbench.AlknetQUIC, callbench.GRPC, goalCallers), ">=", 0.9},
		{"call-rate-tcp-vs-grpc", rep.RateRatio(callbench.AlknetTCP, callbench.GRPC, goalCallers), ">=", 0.9},
		{"call-routed-p50-vs-direct", rrep.P50Ratio(callbench.Routed, callbench.Direct, goalCallers), "<=", 1.6},
	} {
		if g.r.N == 0 {
			continue // that comparison failed: no ratio to judge
		}
		harness.WriteGoal(w, g.name, "loopback", g.r.Median, g.op, g.target)
	}
}

// callProgress returns a Progress function that prints each run to
// standard error, labelled with the scenario.
func callProgress(scenario string) func(callbench.CallResult) {
	return func(r callbench.CallResult) {
		fmt.Fprintf(os.Stderr, "%s run %d %-10s x%-3d: %7.0f calls/s, p50 %v, p99 %v\n", scenario, r.Run, r.System, r.Concurrency, r.Rate(),
			harness.Percentile(r.Latencies, 50).Round(time.Microsecond), harness.Percentile(r.Latencies, 99).Round(time.Microsecond))
	}
}

// callTable prints calls/s, p50 and p99 of every system at every
// concurrency of rep.
func callTable(w io.Writer, rep *callbench.CallReport) {
	fmt.Fprintf(w, "| system | callers | calls/s | p50 | p99 | calls |\n|---|---:|---:|---:|---:|---:|\n")
	for _, c := range rep.Config.Concurrency {
		for _, sys := range rep.Config.Systems {
			lat := rep.Latencies(sys, c)
			r := rep.Rate(sys, c)
			fmt.Fprintf(w, "| %s | %d | %.0f (%.0f–%.0f) | %v | %v | %d |\n", sys, c, r.Median, r.Min, r.Max,
				harness.Percentile(lat, 50).Round(time.Microsecond), harness.Percentile(lat, 99).Round(time.Microsecond), len(lat))
		}
	}
	fmt.Fprintln(w)
}

// callRatios prints, for each pair, the p50 and calls/s ratios at every
// concurrency: the ratio of the pooled p50s or of the median rates, then
// the median (min–max) of the per-round ratios.
func callRatios(w io.Writer, rep *callbench.CallReport, pairs []callPair) {
	fmt.Fprintf(w, "| ratio | goal |")
	for _, c := range rep.Config.Concurrency {
		fmt.Fprintf(w, " %d caller(s) |", c)
	}
	fmt.Fprintf(w, "\n|---|---|")
	for range rep.Config.Concurrency {
		fmt.Fprintf(w, "---:|")
	}
	fmt.Fprintln(w)
	for _, p := range pairs {
		fmt.Fprintf(w, "| %s / %s p50 | %s |", p.a, p.b, p.p50Goal)
		for _, c := range rep.Config.Concurrency {
			fmt.Fprintf(w, " %s; %s |", durRatio(harness.Percentile(rep.Latencies(p.a, c), 50), harness.Percentile(rep.Latencies(p.b, c), 50)),
				statsRatio(rep.P50Ratio(p.a, p.b, c)))
		}
		fmt.Fprintf(w, "\n| %s / %s calls/s | %s |", p.a, p.b, p.rateGoal)
		for _, c := range rep.Config.Concurrency {
			fmt.Fprintf(w, " %s; %s |", ratio(rep.Rate(p.a, c), rep.Rate(p.b, c)), statsRatio(rep.RateRatio(p.a, p.b, c)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)
}

// callPair is a ratio a / b and its goals, "" when it has none.
type callPair struct {
	a, b              callbench.CallSystem
	p50Goal, rateGoal string
}

func statsRatio(s harness.Stats) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f (%.2f–%.2f)", s.Median, s.Min, s.Max)
}

// printComparison prints a call comparison under title: the description
// (formatted with the run length and the number of rounds), the failure
// that ended it if any, the table, and the ratios of pairs.
func printComparison(w io.Writer, title, desc string, rep *callbench.CallReport, err error, pairs []callPair) {
	fmt.Fprintf(w, "## %s\n\n", title)
	fmt.Fprintf(w, desc+"\n\n", rep.Config.Duration, rep.Config.Runs)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	callTable(w, rep)
	fmt.Fprintf(w, "Ratios: of the pooled p50s or of the median rates; then the per-round ratios, median (min–max).\n\n")
	callRatios(w, rep, pairs)
}

func printCalls(w io.Writer, rep *callbench.CallReport, err error) {
	printComparison(w, "Calls: alknet/call, grpc-go, NATS",
		"Echo of a 64-byte JSON object, decoded and encoded again on both sides; N callers share one "+
			"connection, each making calls one after the other; connections made before the clock starts. %v per run, "+
			"%d interleaved rounds. calls/s: median of runs (min–max); latency pooled over the runs. "+
			"alknet: core.Endpoint and core.Dialer, QUIC (a stream per call) or TCP+TLS (one stream); "+
			"grpc: unary, TLS 1.3, JSON codec; nats: embedded nats-server, plain TCP.",
		rep, err, []callPair{
			{callbench.AlknetQUIC, callbench.GRPC, "≤ 1.2 at 16", "≥ 0.9 at 16"},
			{callbench.AlknetTCP, callbench.GRPC, "≤ 1.2 at 16", "≥ 0.9 at 16"},
			{callbench.AlknetQUIC, callbench.NATS, "", ""},
			{callbench.AlknetQUIC, callbench.AlknetTCP, "", ""},
		})
}

func printRoute(w io.Writer, rep *callbench.CallReport, err error) {
	printComparison(w, "Calls routed through a head",
		"direct: the echo call to a worker node over QUIC; routed: to its head, whose operation passes it through "+
			"to the worker (call.RegisterRoute, Specific) over the worker's joined QUIC connection. %v per run, %d interleaved rounds.",
		rep, err, []callPair{{callbench.Routed, callbench.Direct, "≤ 1.6 at 16", ""}})
}

// The second subscription comparison: a few subscriptions of longEvents
// per run. Few, because a subscription ended early can leak a QUIC
// stream's credit in the call module, and about a hundred such leaks leave
// the connection unable to open a stream (see docs/benchmarks.md).
const (
	longEvents = 10000
	longPerRun = 4
)

func printSubscriptions(w io.Writer, reps []*callbench.SubscribeReport, err error) {
	cfg := reps[0].Config
	fmt.Fprintf(w, "## Subscriptions\n\n")
	fmt.Fprintf(w, "A subscription sends N events (the 64-byte object, its id counting) as fast as the node can; the client decodes "+
		"each one. Subscriptions run one after the other for %v per run; %d interleaved rounds. routed: streamed from the worker "+
		"through the head (call.RegisterRoute). Events/s, median of runs (min–max), counting the events of failed subscriptions too. "+
		"The %d-event rows run at most %d subscriptions per run.\n\n",
		cfg.Duration, cfg.Runs, reps[len(reps)-1].Config.Events, reps[len(reps)-1].Config.Max)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "| system | events per subscription | events/s | / %s | failed / started subscriptions | first failure |\n|---|---:|---:|---:|---:|---|\n", callbench.AlknetQUIC)
	for _, rep := range reps {
		for _, sys := range rep.Config.Systems {
			r := rep.Rate(sys)
			failed, started, first := rep.Failures(sys)
			msg := "–"
			if first != nil {
				msg = first.Error()
			}
			fmt.Fprintf(w, "| %s | %d | %.0f (%.0f–%.0f) | %s | %d / %d | %s |\n", sys, rep.Config.Events, r.Median, r.Min, r.Max,
				ratio(r, rep.Rate(callbench.AlknetQUIC)), failed, started, msg)
		}
	}
	fmt.Fprintln(w)
}
