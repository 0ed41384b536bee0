package setup

import (
	"context"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
)

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
