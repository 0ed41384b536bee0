package throughput

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
)

func TestThroughput(t *testing.T) {
	const bytes = 256 << 10
	for _, tr := range allTransports() {
		t.Run(string(tr), func(t *testing.T) {
			target, err := startTarget(tr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := target.Close(); err != nil {
					t.Error(err)
				}
			})
			for _, streams := range []int{1, 4} {
				res, err := target.run(benchtest.TestContext(t), throughputOptions{bytes: bytes, streams: streams})
				if err != nil {
					t.Fatalf("%d streams: %v", streams, err)
				}
				if res.Uploaded != bytes || res.Downloaded != bytes {
					t.Errorf("%d streams: moved %d up, %d down; want %d each way", streams, res.Uploaded, res.Downloaded, bytes)
				}
				if res.Mbps() <= 0 || res.UploadMbps() <= 0 || res.DownloadMbps() <= 0 {
					t.Errorf("%d streams: throughput %v total, %v up, %v down; want > 0", streams, res.Mbps(), res.UploadMbps(), res.DownloadMbps())
				}
			}
			info := target.pathInfo()
			if tr.isQUIC() && runtime.GOOS == "linux" {
				if info.Server.Err != nil || info.Server.Rcv == 0 {
					t.Errorf("server buffers %+v", info.Server)
				}
				if info.Client.Err != nil || info.Client.Rcv == 0 {
					t.Errorf("client buffers %+v", info.Client)
				}
			}
			t.Logf("path: %+v", info)
		})
	}
}

func TestCompareThroughput(t *testing.T) {
	var calls int
	rep, err := CompareThroughput(benchtest.TestContext(t), ThroughputConfig{
		Bytes:    128 << 10,
		Runs:     2,
		Progress: func(ThroughputSample) { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * 2 * len(allTransports()); len(rep.samples) != want || calls != want {
		t.Fatalf("%d samples, %d progress calls; want %d", len(rep.samples), calls, want)
	}
	// Interleaved: the first round covers every variant before the second,
	// which starts with the second transport.
	n := len(allTransports())
	if rep.samples[0].Run != 1 || rep.samples[len(rep.samples)-1].Run != 2 ||
		rep.samples[0].Transport != Router || rep.samples[1].Transport != Bare || rep.samples[2*n].Transport != Bare {
		t.Errorf("samples not interleaved and rotated: %+v", rep.samples)
	}
	for _, tr := range allTransports() {
		if s := rep.Total(tr, 4); s.N != 2 || s.Median <= 0 {
			t.Errorf("%s total stats %+v", tr, s)
		}
	}
	if p := rep.PairedRatio(Router, Bare, 1); p.N != 2 || p.Median <= 0 {
		t.Errorf("router/bare paired ratio %+v", p)
	}
	if _, ok := rep.Paths[Router]; !ok {
		t.Error("no path info for router")
	}
}

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
