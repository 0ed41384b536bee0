package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// benchBytes is each testing.B transfer's size in each direction.
const benchBytes = 32 << 20

// BenchmarkThroughput makes one B1 transfer per iteration; ns/op and MB/s
// include the handshakes, wall-Mbps does not. Compare with
// benchstat; the alknet-bench command interleaves the variants instead.
func BenchmarkThroughput(b *testing.B) {
	for _, tr := range AllTransports() {
		b.Run(string(tr), func(b *testing.B) {
			target, err := StartTarget(tr)
			if err != nil {
				b.Fatal(err)
			}
			defer target.Close()
			for _, streams := range []int{1, 4} {
				b.Run(fmt.Sprintf("%dstreams", streams), func(b *testing.B) {
					b.SetBytes(2 * benchBytes)
					var total float64
					for b.Loop() {
						res, err := target.Run(context.Background(), ThroughputOptions{Bytes: benchBytes, Streams: streams})
						if err != nil {
							b.Fatal(err)
						}
						total += res.Mbps()
					}
					b.ReportMetric(total/float64(b.N), "wall-Mbps")
				})
			}
		})
	}
}

// BenchmarkHandshake makes one B2 handshake (dial, one-byte echo, close)
// per iteration, sequentially.
func BenchmarkHandshake(b *testing.B) {
	srv, err := StartSetupServer()
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
			b.ReportMetric(float64(Percentile(lat, 50).Microseconds()), "p50-µs")
			b.ReportMetric(float64(Percentile(lat, 99).Microseconds()), "p99-µs")
		})
	}
}
