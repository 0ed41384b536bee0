package callbench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

func TestPayloadSize(t *testing.T) {
	b, err := json.Marshal(newPayload())
	if err != nil || len(b) != 64 {
		t.Errorf("payload %s: %d bytes, %v; want 64", b, len(b), err)
	}
}

func TestCallTargets(t *testing.T) {
	for _, sys := range slices.Concat(callSystems(), RouteSystems(), HTTPSystems()[1:]) {
		t.Run(string(sys), func(t *testing.T) {
			target, err := startCallTarget(benchtest.TestContext(t), sys)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := target.Close(); err != nil {
					t.Error(err)
				}
			})
			res, err := target.Run(benchtest.TestContext(t), CallOptions{Duration: 20 * time.Millisecond, Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Latencies) < 4 || res.Rate() <= 0 || res.System != sys || res.Concurrency != 4 {
				t.Errorf("run: %d calls, rate %v, %s x%d", len(res.Latencies), res.Rate(), res.System, res.Concurrency)
			}
			_, err = target.subscribe(benchtest.TestContext(t), 10)
			if serves := slices.Contains(subscribeSystems(), sys) || sys == Direct; serves != (err == nil) {
				t.Errorf("subscription: %v; want success %v", err, serves)
			}
		})
	}
	if _, err := startCallTarget(benchtest.TestContext(t), "smtp"); err == nil {
		t.Error("unknown system: no error")
	}
}

func TestCompareCalls(t *testing.T) {
	var calls int
	rep, err := CompareCalls(benchtest.TestContext(t), CallConfig{
		Concurrency: []int{1, 3},
		Duration:    10 * time.Millisecond,
		Runs:        2,
		Progress:    func(CallResult) { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	n := len(callSystems())
	if want := 2 * 2 * n; len(rep.runs) != want || calls != want {
		t.Fatalf("%d runs, %d progress calls; want %d", len(rep.runs), calls, want)
	}
	// Interleaved and rotated: round 2 starts with the second system.
	if rep.runs[0].System != AlknetQUIC || rep.runs[2*n].System != AlknetTCP || rep.runs[2*n].Run != 2 {
		t.Errorf("runs not interleaved and rotated: %v %v", rep.runs[0].System, rep.runs[2*n].System)
	}
	for _, sys := range callSystems() {
		for _, c := range []int{1, 3} {
			if s := rep.Rate(sys, c); s.N != 2 || s.Median <= 0 || len(rep.Latencies(sys, c)) < 2*c {
				t.Errorf("%s x%d: rate %+v, %d latencies", sys, c, s, len(rep.Latencies(sys, c)))
			}
		}
	}
	if r := rep.RateRatio(AlknetQUIC, GRPC, 3); r.N != 2 || r.Median <= 0 {
		t.Errorf("rate ratio %+v", r)
	}
	if r := rep.P50Ratio(AlknetQUIC, GRPC, 1); r.N != 2 || r.Median <= 0 {
		t.Errorf("p50 ratio %+v", r)
	}
}

func TestCompareSubscriptions(t *testing.T) {
	rep, err := CompareSubscriptions(benchtest.TestContext(t), SubscribeConfig{
		Duration: 10 * time.Millisecond,
		Events:   50,
		Runs:     1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.runs) != len(subscribeSystems()) {
		t.Fatalf("%d runs, want %d", len(rep.runs), len(subscribeSystems()))
	}
	for _, r := range rep.runs {
		if r.events != 50*r.Subscriptions || r.Subscriptions < 1 || r.Failed != 0 || r.Rate() <= 0 {
			t.Errorf("%s: %d events in %d subscriptions (%d failed: %v), %v/s", r.System, r.events, r.Subscriptions, r.Failed, r.err, r.Rate())
		}
	}
}

// BenchmarkCall makes b.N echo calls of the 64-byte payload from c
// goroutines sharing one connection. It reports calls/s and the
// latency percentiles.
func BenchmarkCall(b *testing.B) {
	benchmarkCalls(b, callSystems(), []int{1, 16, 256})
}

// BenchmarkHTTP makes b.N echo calls through each HTTP front door (and
// alknet/call and plain net/http) from c goroutines sharing one connection.
func BenchmarkHTTP(b *testing.B) {
	benchmarkCalls(b, HTTPSystems(), []int{1, 16})
}

// BenchmarkRoute compares a call routed through a head with the same call
// made directly to the worker.
func BenchmarkRoute(b *testing.B) {
	benchmarkCalls(b, RouteSystems(), []int{1, 16})
}

func benchmarkCalls(b *testing.B, systems []CallSystem, concurrency []int) {
	for _, sys := range systems {
		b.Run(string(sys), func(b *testing.B) {
			target, err := startCallTarget(context.Background(), sys)
			if err != nil {
				b.Fatal(err)
			}
			defer target.Close()
			for _, c := range concurrency {
				b.Run(fmt.Sprintf("c%d", c), func(b *testing.B) {
					lats := make([][]time.Duration, c)
					var next atomic.Int64
					var wg sync.WaitGroup
					b.ResetTimer()
					start := time.Now()
					for i := range c {
						wg.Go(func() {
							for next.Add(1) <= int64(b.N) {
								t0 := time.Now()
								if err := target.call(context.Background()); err != nil {
									b.Error(err)
									return
								}
								lats[i] = append(lats[i], time.Since(t0))
							}
						})
					}
					wg.Wait()
					elapsed := time.Since(start)
					b.StopTimer()
					var all []time.Duration
					for _, l := range lats {
						all = append(all, l...)
					}
					b.ReportMetric(float64(len(all))/elapsed.Seconds(), "calls/s")
					b.ReportMetric(float64(harness.Percentile(all, 50).Microseconds()), "p50-µs")
					b.ReportMetric(float64(harness.Percentile(all, 99).Microseconds()), "p99-µs")
				})
			}
		})
	}
}

// BenchmarkSubscribe receives b.N events in subscriptions of
// DefaultSubscribeEvents.
func BenchmarkSubscribe(b *testing.B) {
	for _, sys := range subscribeSystems() {
		b.Run(string(sys), func(b *testing.B) {
			target, err := startCallTarget(context.Background(), sys)
			if err != nil {
				b.Fatal(err)
			}
			defer target.Close()
			b.ResetTimer()
			start := time.Now()
			for left := b.N; left > 0; left -= DefaultSubscribeEvents {
				if _, err := target.subscribe(context.Background(), min(left, DefaultSubscribeEvents)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
