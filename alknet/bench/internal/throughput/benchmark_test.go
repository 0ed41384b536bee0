package throughput

import (
	"context"
	"fmt"
	"testing"
)

// benchBytes is each testing.B transfer's size in each direction.
const benchBytes = 32 << 20

// BenchmarkThroughput makes one B1 transfer per iteration; ns/op and MB/s
// include the handshakes, wall-Mbps does not. Compare with
// benchstat; the alknet-bench command interleaves the variants instead.
func BenchmarkThroughput(b *testing.B) {
	for _, tr := range allTransports() {
		b.Run(string(tr), func(b *testing.B) {
			target, err := startTarget(tr)
			if err != nil {
				b.Fatal(err)
			}
			defer target.Close()
			for _, streams := range []int{1, 4} {
				b.Run(fmt.Sprintf("%dstreams", streams), func(b *testing.B) {
					b.SetBytes(2 * benchBytes)
					var total float64
					for b.Loop() {
						res, err := target.run(context.Background(), throughputOptions{bytes: benchBytes, streams: streams})
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
