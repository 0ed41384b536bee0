package servebench

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

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/setup"
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
	key, err := harness.NewKey()
	if err != nil {
		return 1
	}
	r, err := core.NewRouter(setup.EchoHandler{})
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

func TestMeasureServe(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	t.Setenv(fakeServeEnv, "1")
	res, err := MeasureServe(benchtest.TestContext(t), ServeOptions{Binary: os.Args[0], idle: 50 * time.Millisecond})
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
	res, err := MeasureServe(benchtest.TestContext(t), ServeOptions{Binary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
}

func TestMeasureServeFailures(t *testing.T) {
	if _, err := MeasureServe(benchtest.TestContext(t), ServeOptions{Binary: "/nonexistent/alknet"}); err == nil {
		t.Error("missing binary: no error")
	}
	if _, err := MeasureServe(benchtest.TestContext(t), ServeOptions{}); err == nil {
		t.Error("no binary: no error")
	}
	t.Setenv(fakeServeEnv, "fail")
	res, err := MeasureServe(benchtest.TestContext(t), ServeOptions{Binary: os.Args[0]})
	if err == nil || !strings.Contains(err.Error(), "cannot open the vault") || res.First.ExitCode != 3 {
		t.Errorf("binary exiting early: got %+v, %v; want exit status 3 and its output in the error", res.First, err)
	}
}
