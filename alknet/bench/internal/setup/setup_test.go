package setup

import (
	"context"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
)

func TestCompareHandshakes(t *testing.T) {
	rep, err := CompareHandshakes(benchtest.TestContext(t), HandshakeConfig{
		Concurrency: []int{1, 2},
		Duration:    100 * time.Millisecond,
		Runs:        1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.runs) != 4 {
		t.Fatalf("%d runs, want 4", len(rep.runs))
	}
	for _, n := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		for _, c := range []int{1, 2} {
			lat := rep.Latencies(n, c)
			if len(lat) < c || harness.Percentile(lat, 50) <= 0 || rep.Rate(n, c).Median <= 0 {
				t.Errorf("%s x%d: %d handshakes, rate %+v", n, c, len(lat), rep.Rate(n, c))
			}
		}
	}
}

// BenchmarkHandshake makes one B2 handshake (dial, one-byte echo, close)
// per iteration, sequentially.
func BenchmarkHandshake(b *testing.B) {
	srv, err := startSetupServer()
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	for _, n := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		b.Run(string(n), func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				d, err := srv.Handshake(context.Background(), n)
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, d)
			}
			b.ReportMetric(float64(harness.Percentile(lat, 50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(harness.Percentile(lat, 99).Microseconds()), "p99-µs")
		})
	}
}
