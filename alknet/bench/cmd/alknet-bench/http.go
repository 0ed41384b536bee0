package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alkdev/alknet/alknet/bench"
)

// httpCalls runs the http scenario: the echo operation through
// alknet/call, REST over h2 and h3, and MCP tools/call, with a plain
// net/http handler over h2 as the floor, at 1 and 16 callers.
func httpCalls(ctx context.Context, w io.Writer, runs int, duration time.Duration) error {
	rep, err := bench.CompareCalls(ctx, bench.CallConfig{Systems: bench.HTTPSystems(), Concurrency: []int{1, 16},
		Duration: duration, Runs: runs, Progress: func(r bench.CallResult) {
			fmt.Fprintf(os.Stderr, "http run %d %-9s x%-3d: %7.0f calls/s, p50 %v, p99 %v\n", r.Run, r.System, r.Concurrency, r.Rate(),
				bench.Percentile(r.Latencies, 50).Round(time.Microsecond), bench.Percentile(r.Latencies, 99).Round(time.Microsecond))
		}})
	printComparison(w, "HTTP front doors: REST (h2, h3), MCP, against alknet/call and plain net/http",
		"The echo of a 64-byte JSON object, registered once in a call registry: alknet/call over QUIC; "+
			"`POST /v1/ops/bench/echo` with a bearer token over h2 (TCP+TLS) and over HTTP/3 (quic-go's client); "+
			"MCP `tools/call` of `bench_echo` (official Go SDK client, streamable HTTP on h2); and, as the floor, "+
			"a net/http handler decoding and encoding the same JSON over h2 on its own TLS listener. "+
			"N callers share one connection, Go clients in the same process. %v per run, %d interleaved rounds.",
		rep, err, []callPair{
			{bench.RESTH2, bench.AlknetQUIC, "≤ 1.5", ""},
			{bench.RESTH3, bench.RESTH2, "", "≥ 0.7"},
			{bench.MCPTool, bench.AlknetQUIC, "≤ 2", ""},
			{bench.RESTH2, bench.PlainH2, "≤ 1.3", ""},
		})
	return err
}
