package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/callbench"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// httpCalls runs the http scenario: the echo operation through
// alknet/call, REST over h2 and h3, and MCP tools/call, with a plain
// net/http handler over h2 as the floor, at 1 and 16 callers.
func httpCalls(ctx context.Context, w io.Writer, runs int, duration time.Duration) error {
	rep, err := callbench.CompareCalls(ctx, callbench.CallConfig{Systems: callbench.HTTPSystems(), Concurrency: []int{1, 16},
		Duration: duration, Runs: runs, Progress: callProgress("http")})
	printComparison(w, "HTTP front doors: REST (h2, h3), MCP, against alknet/call and plain net/http",
		"The echo of a 64-byte JSON object, registered once in a call registry: alknet/call over QUIC; "+
			"`POST /v1/ops/bench/echo` with a bearer token over h2 (TCP+TLS) and over HTTP/3 (quic-go's client); "+
			"MCP `tools/call` of `bench_echo` (official Go SDK client, streamable HTTP on h2); and, as the floor, "+
			"a net/http handler decoding and encoding the same JSON over h2 on its own TLS listener. "+
			"N callers share one connection, Go clients in the same process. %v per run, %d interleaved rounds.",
		rep, err, []callPair{
			{callbench.RESTH2, callbench.AlknetQUIC, "≤ 1.5", ""},
			{callbench.RESTH3, callbench.RESTH2, "", "≥ 0.7"},
			{callbench.MCPTool, callbench.AlknetQUIC, "≤ 2", ""},
			{callbench.RESTH2, callbench.PlainH2, "≤ 1.2", ""},
		})
	h2ratio, h2err := h2loadTable(ctx, w, runs)
	httpGoals(w, rep, h2ratio)
	return errors.Join(err, h2err)
}

// httpGoals prints the scenario's goal lines (issue 18's table, profile
// loopback): the median of the per-round ratios, at 1 and 16 callers; the
// h2load ratio only when h2load ran.
func httpGoals(w io.Writer, rep *callbench.CallReport, h2load harness.Stats) {
	if rep == nil {
		return
	}
	for _, c := range rep.Config.Concurrency {
		for _, g := range []struct {
			name   string
			s      harness.Stats
			op     string
			target float64
		}{
			{"http-rest-p50", rep.P50Ratio(callbench.RESTH2, callbench.AlknetQUIC, c), "<=", 1.5},
			{"http-h3-rate", rep.RateRatio(callbench.RESTH3, callbench.RESTH2, c), ">=", 0.7},
			{"http-mcp-p50", rep.P50Ratio(callbench.MCPTool, callbench.AlknetQUIC, c), "<=", 2},
			{"http-gateway-p50", rep.P50Ratio(callbench.RESTH2, callbench.PlainH2, c), "<=", 1.2},
		} {
			if g.s.N > 0 {
				harness.WriteGoal(w, fmt.Sprintf("%s-c%d", g.name, c), "loopback", g.s.Median, g.op, g.target)
			}
		}
	}
	if h2load.N > 0 {
		harness.WriteGoal(w, "http-gateway-h2load", "loopback", h2load.Median, "<=", 1.2)
	}
}

// h2loadTable runs h2load against REST over h2 and plain net/http, prints
// the runs' rates and mean request times with their ratio, and returns the
// per-round ratios.
func h2loadTable(ctx context.Context, w io.Writer, runs int) (harness.Stats, error) {
	res, err := callbench.CompareH2Load(ctx, callbench.H2LoadConfig{Runs: runs})
	fmt.Fprintf(w, "### The same over h2 with h2load\n\n")
	fmt.Fprintf(w, "h2load (nghttp2) on one connection with 16 concurrent streams, 20 000 POSTs per run, %d interleaved rounds: "+
		"REST over h2 on the node against the plain net/http handler. h2load reports the mean time per request, not percentiles.\n\n", runs)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	rates := map[callbench.CallSystem][]float64{}
	means := map[callbench.CallSystem][]float64{}
	byRun := map[int]map[callbench.CallSystem]callbench.H2LoadResult{}
	for _, r := range res {
		rates[r.System] = append(rates[r.System], r.Rate)
		means[r.System] = append(means[r.System], float64(r.Mean))
		if byRun[r.Run] == nil {
			byRun[r.Run] = map[callbench.CallSystem]callbench.H2LoadResult{}
		}
		byRun[r.Run][r.System] = r
	}
	fmt.Fprintf(w, "| system | req/s | mean time per request |\n|---|---:|---:|\n")
	for _, sys := range []callbench.CallSystem{callbench.RESTH2, callbench.PlainH2} {
		r, m := harness.Summarize(rates[sys]), harness.Summarize(means[sys])
		fmt.Fprintf(w, "| %s | %.0f (%.0f–%.0f) | %v (%v–%v) |\n", sys, r.Median, r.Min, r.Max,
			time.Duration(m.Median).Round(time.Microsecond), time.Duration(m.Min).Round(time.Microsecond), time.Duration(m.Max).Round(time.Microsecond))
	}
	var ratios []float64
	for _, rr := range byRun {
		a, okA := rr[callbench.RESTH2]
		b, okB := rr[callbench.PlainH2]
		if okA && okB && b.Mean > 0 {
			ratios = append(ratios, float64(a.Mean)/float64(b.Mean))
		}
	}
	st := harness.Summarize(ratios)
	fmt.Fprintf(w, "\nREST h2 / plain net/http, mean time per request, per round (goal ≤ 1.2): %s\n\n", statsRatio(st))
	return st, err
}
