package bench

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"go.uber.org/goleak"
)

// fakeServeEnv makes the test binary act as `alknet serve` (see fakeServe),
// so that MeasureServe is tested without the CLI.
const fakeServeEnv = "ALKNET_BENCH_FAKE_SERVE"

func TestMain(m *testing.M) {
	switch os.Getenv(fakeServeEnv) {
	case "1":
		os.Exit(fakeServe(os.Args[1:]))
	case "fail":
		os.Stderr.WriteString("fake alknet: cannot open the vault\n")
		os.Exit(3)
	}
	goleak.VerifyTestMain(m)
}

// fakeServe mimics `alknet serve --data-dir DIR --listen ADDR`: it serves
// the echo protocol on ADDR, logs core's listening line to stderr, and
// exits 0 on SIGTERM.
func fakeServe(args []string) int {
	if len(args) != 5 || args[0] != "serve" || args[1] != "--data-dir" || args[3] != "--listen" {
		os.Stderr.WriteString("usage: serve --data-dir DIR --listen ADDR\n")
		return 2
	}
	if err := os.MkdirAll(args[2], 0o700); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	key, err := newKey()
	if err != nil {
		return 1
	}
	r, err := core.NewRouter(echoHandler{})
	if err != nil {
		return 1
	}
	ep, err := core.New(core.Config{Addr: args[4], Key: key, Router: r,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := ep.Serve(ctx); !errors.Is(err, core.ErrEndpointClosed) {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	return 0
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestThroughput(t *testing.T) {
	const bytes = 256 << 10
	for _, tr := range AllTransports() {
		t.Run(string(tr), func(t *testing.T) {
			target, err := StartTarget(tr)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := target.Close(); err != nil {
					t.Error(err)
				}
			})
			for _, streams := range []int{1, 4} {
				res, err := target.Run(testContext(t), ThroughputOptions{Bytes: bytes, Streams: streams})
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
			info := target.PathInfo()
			if tr.IsQUIC() && runtime.GOOS == "linux" {
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
	rep, err := CompareThroughput(testContext(t), ThroughputConfig{
		Bytes:    128 << 10,
		Runs:     2,
		Progress: func(ThroughputSample) { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * 2 * len(AllTransports()); len(rep.Samples) != want || calls != want {
		t.Fatalf("%d samples, %d progress calls; want %d", len(rep.Samples), calls, want)
	}
	// Interleaved: the first round covers every variant before the second,
	// which starts with the second transport.
	n := len(AllTransports())
	if rep.Samples[0].Run != 1 || rep.Samples[len(rep.Samples)-1].Run != 2 ||
		rep.Samples[0].Transport != Router || rep.Samples[1].Transport != Bare || rep.Samples[2*n].Transport != Bare {
		t.Errorf("samples not interleaved and rotated: %+v", rep.Samples)
	}
	for _, tr := range AllTransports() {
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

func TestCompareHandshakes(t *testing.T) {
	rep, err := CompareHandshakes(testContext(t), HandshakeConfig{
		Concurrency: []int{1, 2},
		Duration:    100 * time.Millisecond,
		Runs:        1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Runs) != 4 {
		t.Fatalf("%d runs, want 4", len(rep.Runs))
	}
	for _, n := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		for _, c := range []int{1, 2} {
			lat := rep.Latencies(n, c)
			if len(lat) < c || Percentile(lat, 50) <= 0 || rep.Rate(n, c).Median <= 0 {
				t.Errorf("%s x%d: %d handshakes, rate %+v", n, c, len(lat), rep.Rate(n, c))
			}
		}
	}
}

func TestMeasureServe(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Setenv(fakeServeEnv, "1")
	res, err := MeasureServe(testContext(t), ServeOptions{Binary: os.Args[0], Idle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []StartResult{res.First, res.Second} {
		if s.ToLog <= 0 || s.ToDial < s.ToLog || s.RSS <= 0 || s.HWM < s.RSS || s.ExitCode != 0 {
			t.Errorf("implausible start %+v", s)
		}
	}
}

// TestMeasureServeAlknet measures a real alknet binary named by
// ALKNET_BENCH_BINARY; without it the test skips.
func TestMeasureServeAlknet(t *testing.T) {
	bin := os.Getenv("ALKNET_BENCH_BINARY")
	if bin == "" {
		t.Skip("set ALKNET_BENCH_BINARY to an alknet binary to measure it")
	}
	res, err := MeasureServe(testContext(t), ServeOptions{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
}

func TestMeasureServeFailures(t *testing.T) {
	if _, err := MeasureServe(testContext(t), ServeOptions{Binary: "/nonexistent/alknet"}); err == nil {
		t.Error("missing binary: no error")
	}
	if _, err := MeasureServe(testContext(t), ServeOptions{}); err == nil {
		t.Error("no binary: no error")
	}
	t.Setenv(fakeServeEnv, "fail")
	res, err := MeasureServe(testContext(t), ServeOptions{Binary: os.Args[0]})
	if err == nil || !strings.Contains(err.Error(), "cannot open the vault") || res.First.ExitCode != 3 {
		t.Errorf("binary exiting early: got %+v, %v; want exit status 3 and its output in the error", res.First, err)
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want Stats
	}{
		{"empty", nil, Stats{}},
		{"one", []float64{3}, Stats{N: 1, Median: 3, Min: 3, Max: 3}},
		{"odd", []float64{5, 1, 3}, Stats{N: 3, Median: 3, Min: 1, Max: 5}},
		{"even", []float64{4, 1, 3, 2}, Stats{N: 4, Median: 2.5, Min: 1, Max: 4}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Summarize(tc.in); got != tc.want {
				t.Errorf("Summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(100-i) * time.Millisecond
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{50, 50 * time.Millisecond},
		{99, 99 * time.Millisecond},
		{100, 100 * time.Millisecond},
		{0.1, time.Millisecond},
	}
	for _, tc := range tests {
		if got := Percentile(d, tc.p); got != tc.want {
			t.Errorf("Percentile(1..100ms, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

func TestProbeGSO(t *testing.T) {
	p := ProbeGSO()
	if p.Send && !p.Sockopt {
		t.Errorf("segmented send worked but the socket option did not: %+v", p)
	}
	t.Logf("%+v", p)
}
