// Command alknet-bench runs the alknet benchmarks (B1 stream throughput, B2
// connection set-up, idle `alknet serve`, call latency and throughput
// against grpc-go and NATS, transfers over emulated paths) and prints a Markdown report of
// medians and ratios to standard output; progress goes to standard error.
//
//	go run ./alknet/bench/cmd/alknet-bench [-bytes 256MiB] [-runs 5] [-duration 2s]
//		[-only b1,b2,serve,call,http,ssh,dns,git,fs,hostile,wan,handshakes,fwdlatency,scale,reach] [-transports router,bare,tcp,router-tcp] [-alknet BIN]
//		[-call-duration 1s]
//		[-git-runs 3] [-git-ops clone,shallow,fetch,push] [-git-cache DIR] [-git-alknet-config TOML]
//		[-sftp-bytes 1GiB] [-iperf-time 5s] [-ssh-tests tunnel,socks,sftp-get,sftp-put,setup]
//		[-dns-duration 5s] [-dns-clients 4] [-dns-inflight 16] [-dnsperf BIN]
//		[-fs-bytes 1GiB] [-fs-dir DIR]
//		[-scale-parts conns,workers,fs,git] [-scale-conns 1000,10000] [-scale-networks quic,tcp] [-scale-workers 2,200]
//		[-scale-blocks 1000,10000,100000] [-scale-refs 100,1000,10000]
//		[-wan-profiles lan,wan,far,lossy,bursty,heavyloss] [-wan-duration 4s] [-wan-transfers switch,perf,sftp,forward,git,fs,call]
//		[-wan-bytes 256MiB] [-wan-lossy-bytes 32MiB] [-wan-forward-time 5s]
//		[-reach-bytes 67108864] [-reach-profiles ns,wan]
//
// Variants run interleaved, in an order rotating each round, so
// that noise on a shared machine hits all of them alike; compare the ratios
// more than the absolute numbers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/servebench"
	"github.com/alkdev/alknet/alknet/bench/internal/setup"
	"github.com/alkdev/alknet/alknet/bench/internal/sshbench"
	"github.com/alkdev/alknet/alknet/bench/internal/throughput"
	"github.com/alkdev/alknet/core"
)

// Flags of the ssh scenario (-only ssh): alknet's SSH, SOCKS5 and SFTP
// against OpenSSH; its rounds are -runs.
var (
	sftpBytes = flag.String("sftp-bytes", "1GiB", "ssh: size of the SFTP file (suffixes KiB, MiB, GiB)")
	iperfTime = flag.Duration("iperf-time", 5*time.Second, "ssh: length of each iperf3 run, whole seconds")
	sshTests  = flag.String("ssh-tests", "tunnel,socks,sftp-get,sftp-put,setup", "ssh: comma-separated tests to run")
)

func main() {
	bytesFlag := flag.String("bytes", "256MiB", "B1: bytes per transfer in each direction, split across the streams (suffixes KiB, MiB, GiB)")
	runs := flag.Int("runs", 5, "interleaved rounds of B1, B2 and call")
	duration := flag.Duration("duration", 2*time.Second, "B2: length of each handshake run")
	only := flag.String("only", "b1,b2,serve", "comma-separated scenarios to run: b1, b2, serve, call, http, ssh, dns, git, fs, hostile, wan, handshakes, fwdlatency, scale, reach")
	callDuration := flag.Duration("call-duration", time.Second, "call: length of each run")
	alknet := flag.String("alknet", "", "serve: the alknet binary; empty builds ./alknet from the repository root")
	transports := flag.String("transports", "router,bare,tcp,router-tcp", "B1: comma-separated transports to compare")
	flag.Parse()
	if err := run(*bytesFlag, *runs, *duration, *callDuration, *only, *alknet, *transports); err != nil {
		fmt.Fprintln(os.Stderr, "alknet-bench:", err)
		os.Exit(1)
	}
}

func run(bytesFlag string, runs int, duration, callDuration time.Duration, only, alknet, transports string) error {
	size, err := parseBytes(bytesFlag)
	if err != nil {
		return err
	}
	var trs []throughput.Transport
	for _, s := range strings.Split(transports, ",") {
		tr, err := throughput.ParseTransport(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-transports: %w", err)
		}
		trs = append(trs, tr)
	}
	if runs < 1 {
		return fmt.Errorf("-runs %d: want at least 1", runs)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		switch s = strings.TrimSpace(s); s {
		case "b1", "b2", "serve", "call", "http", "ssh", "dns", "git", "fs", "hostile", "wan", "handshakes", "fwdlatency", "scale", "reach":
			want[s] = true
		default:
			return fmt.Errorf("-only: unknown scenario %q (want b1, b2, serve, call, http, ssh, dns, git, fs, hostile, wan, handshakes, fwdlatency, scale, reach)", s)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	w := os.Stdout
	printMachine(w)
	var errs []error
	if want["b1"] {
		rep, err := throughput.CompareThroughput(ctx, throughput.ThroughputConfig{
			Transports: trs,
			Bytes:      size,
			Runs:       runs,
			Progress: func(s throughput.ThroughputSample) {
				fmt.Fprintf(os.Stderr, "b1 run %d %-10s %d streams: total %6.0f Mbit/s (perf: up %6.0f, down %6.0f)\n",
					s.Run, s.Transport, s.Streams, s.Result.Mbps(), s.Result.UploadMbps(), s.Result.DownloadMbps())
			},
		})
		printThroughput(w, rep, err)
		errs = append(errs, err)
	}
	if want["b2"] {
		rep, err := setup.CompareHandshakes(ctx, setup.HandshakeConfig{
			Duration: duration,
			Runs:     runs,
			Progress: func(r setup.HandshakeResult) {
				fmt.Fprintf(os.Stderr, "b2 run %d %-4s x%d: %6.0f handshakes/s, p50 %v\n",
					r.Run, r.Network, r.Concurrency, r.Rate(), harness.Percentile(r.Latencies, 50).Round(time.Microsecond))
			},
		})
		printHandshakes(w, rep, err)
		errs = append(errs, err)
	}
	if want["serve"] {
		errs = append(errs, serve(ctx, w, alknet))
	}
	if want["call"] {
		errs = append(errs, calls(ctx, w, runs, callDuration))
	}
	if want["http"] {
		errs = append(errs, httpCalls(ctx, w, runs, callDuration))
	}
	if want["ssh"] {
		errs = append(errs, sshScenario(ctx, w, runs, alknet))
	}
	if want["dns"] {
		errs = append(errs, dnsScenario(ctx, w, runs))
	}
	if want["git"] {
		errs = append(errs, gitScenario(ctx, w, alknet))
	}
	if want["fs"] {
		errs = append(errs, fsScenario(ctx, w, runs, alknet))
	}
	if want["hostile"] {
		errs = append(errs, hostileScenario(ctx, w, alknet))
	}
	if want["wan"] {
		errs = append(errs, wanScenario(ctx, w, alknet))
	}
	if want["handshakes"] {
		errs = append(errs, handshakesScenario(ctx, w, runs, alknet))
	}
	if want["fwdlatency"] {
		errs = append(errs, fwdLatencyScenario(ctx, w, alknet))
	}
	if want["scale"] {
		errs = append(errs, scaleScenario(ctx, w, alknet))
	}
	if want["reach"] {
		errs = append(errs, reachScenario(ctx, w, runs, alknet))
	}
	return errors.Join(errs...)
}

// sshScenario runs the ssh scenario with the alknet binary bin, building it
// first if bin is empty.
func sshScenario(ctx context.Context, w io.Writer, runs int, bin string) error {
	size, err := parseBytes(*sftpBytes)
	if err != nil {
		return fmt.Errorf("-sftp-bytes: %w", err)
	}
	cfg := sshbench.SSHConfig{Binary: bin, Runs: runs, IperfTime: *iperfTime, SFTPBytes: size,
		Progress: func(s sshbench.SSHSample) {
			fmt.Fprintf(os.Stderr, "ssh run %d %-9s %-26s %g\n", s.Run, s.Test, s.Variant, s.Value)
		}}
	for _, s := range strings.Split(*sshTests, ",") {
		t, err := sshbench.ParseSSHTest(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-ssh-tests: %w", err)
		}
		cfg.Tests = append(cfg.Tests, t)
	}
	var cleanup func()
	if cfg.Binary, cleanup, err = alknetBinary(ctx, "ssh", bin); err != nil {
		return err
	}
	defer cleanup()
	rep, err := sshbench.CompareSSH(ctx, cfg)
	rep.WriteMarkdown(w, err)
	return err
}

// parseBytes reads a byte count with an optional KiB, MiB or GiB suffix.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("-bytes %q: want a positive count, optionally with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

func printMachine(w io.Writer) {
	m := harness.ReadMachine()
	g := harness.ProbeOffloads()
	fmt.Fprintf(w, "## Machine\n\n| | |\n|---|---|\n")
	fmt.Fprintf(w, "| CPUs | %d (GOMAXPROCS %d) |\n", m.CPUs, m.GOMAXPROCS)
	fmt.Fprintf(w, "| CPU model | %s |\n", orUnknown(m.Model))
	fmt.Fprintf(w, "| kernel | %s |\n", orUnknown(m.Kernel))
	fmt.Fprintf(w, "| Go | %s |\n", m.GoVersion)
	fmt.Fprintf(w, "| net.core.rmem_max / wmem_max | %d / %d |\n", m.RmemMax, m.WmemMax)
	fmt.Fprintf(w, "| UDP_SEGMENT (GSO) on loopback | getsockopt %s; segmented send %s%s |\n",
		yesNo(g.Sockopt), yesNo(g.Send), errNote(g.Err))
	fmt.Fprintf(w, "| QUIC_GO_DISABLE_GSO | %q%s |\n", os.Getenv("QUIC_GO_DISABLE_GSO"),
		map[bool]string{true: " (GSO disabled)", false: ""}[g.DisabledByEnv])
	fmt.Fprintf(w, "| UDP_GRO on loopback (quic-go patch 14, a socket receiving in bulk) | coalesced read %s |\n", yesNo(g.Coalesced))
	fmt.Fprintf(w, "| QUIC_GO_DISABLE_GRO | %q%s |\n\n", os.Getenv("QUIC_GO_DISABLE_GRO"),
		map[bool]string{true: " (GRO disabled)", false: ""}[g.GRODisabledByEnv])
}

func printThroughput(w io.Writer, rep *throughput.ThroughputReport, err error) {
	cfg := rep.Config
	fmt.Fprintf(w, "## B1: stream throughput\n\n")
	fmt.Fprintf(w, "%s up, then %s down per transfer, split across the streams; connections dialed before the clock starts; "+
		"%d interleaved rounds; Mbit/s, median (min–max). *Total* is both directions over the wall-clock time of the transfer; "+
		"*upload* and *download* are core/perf's own figures: summed bytes over the slowest stream's phase, "+
		"which with several streams is neither per-direction nor wall-clock time, since one stream's upload overlaps another's download.\n\n",
		formatBytes(cfg.Bytes), formatBytes(cfg.Bytes), cfg.Runs)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "| transport | streams | total | upload (perf) | download (perf) |\n|---|---:|---:|---:|---:|\n")
	for _, n := range cfg.Streams {
		for _, tr := range cfg.Transports {
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", tr, n, mbps(rep.Total(tr, n)), mbps(rep.Upload(tr, n)), mbps(rep.Download(tr, n)))
		}
	}
	fmt.Fprintf(w, "\nRatios of *total*: median of the per-round ratios (min–max), then the ratio of the medians:\n\n| ratio | meaning |")
	for _, n := range cfg.Streams {
		fmt.Fprintf(w, " %d stream(s) |", n)
	}
	fmt.Fprintf(w, "\n|---|---|%s\n", strings.Repeat("---:|", len(cfg.Streams)))
	for _, r := range []struct {
		a, b    throughput.Transport
		meaning string
	}{
		{throughput.Router, throughput.Bare, "router overhead on QUIC (goal ≥ 0.97)"},
		{throughput.RouterTCP, throughput.TCP, "router overhead on TCP"},
		{throughput.Bare, throughput.TCP, "QUIC / TCP, no router"},
		{throughput.Router, throughput.RouterTCP, "QUIC / TCP through core.Endpoint"},
	} {
		fmt.Fprintf(w, "| %s / %s | %s |", r.a, r.b, r.meaning)
		for _, n := range cfg.Streams {
			p := rep.PairedRatio(r.a, r.b, n)
			if p.N == 0 {
				fmt.Fprintf(w, " – |")
				continue
			}
			fmt.Fprintf(w, " %.3f (%.3f–%.3f); %s |", p.Median, p.Min, p.Max, ratio(rep.Total(r.a, n), rep.Total(r.b, n)))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\nQUIC sockets (SO_RCVBUF / SO_SNDBUF as getsockopt reports them: twice the size set):\n\n")
	fmt.Fprintf(w, "| transport | client GSO | server GSO | client buffers | server buffers |\n|---|---|---|---|---|\n")
	for _, tr := range cfg.Transports {
		p, ok := rep.Paths[tr]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", tr, yesNo(p.ClientGSO), yesNo(p.ServerGSO), buffers(p.Client), buffers(p.Server))
	}
	fmt.Fprintln(w)
	// Last, the goal: the router costs QUIC at most 3 %.
	for _, n := range cfg.Streams {
		if p := rep.PairedRatio(throughput.Router, throughput.Bare, n); p.N > 0 {
			harness.WriteGoal(w, fmt.Sprintf("b1-router-overhead-%d-streams", n), "loopback", p.Median, ">=", 0.97)
		}
	}
}

func printHandshakes(w io.Writer, rep *setup.HandshakeReport, err error) {
	cfg := rep.Config
	fmt.Fprintf(w, "## B2: connection set-up\n\n")
	fmt.Fprintf(w, "core.Dialer to core.Endpoint on loopback: dial, open a stream, echo one byte, close. "+
		"%v per run, %d interleaved rounds. Rate counts completed dial-echo-close cycles per second (median of runs, min–max); "+
		"latency is dial start to the echoed byte, pooled over the runs.\n\n", cfg.Duration, cfg.Runs)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "| network | workers | handshakes/s | p50 | p99 | samples |\n|---|---:|---:|---:|---:|---:|\n")
	for _, c := range cfg.Concurrency {
		for _, n := range cfg.Networks {
			lat := rep.Latencies(n, c)
			r := rep.Rate(n, c)
			fmt.Fprintf(w, "| %s | %d | %.0f (%.0f–%.0f) | %v | %v | %d |\n", n, c, r.Median, r.Min, r.Max,
				harness.Percentile(lat, 50).Round(time.Microsecond), harness.Percentile(lat, 99).Round(time.Microsecond), len(lat))
		}
	}
	fmt.Fprintf(w, "\n| workers | QUIC / TCP rate (goal ≥ 1) | QUIC / TCP p50 latency | QUIC / TCP p99 latency |\n|---:|---:|---:|---:|\n")
	for _, c := range cfg.Concurrency {
		q, t := rep.Latencies(core.NetworkQUIC, c), rep.Latencies(core.NetworkTCP, c)
		fmt.Fprintf(w, "| %d | %s | %s | %s |\n", c,
			ratio(rep.Rate(core.NetworkQUIC, c), rep.Rate(core.NetworkTCP, c)),
			durRatio(harness.Percentile(q, 50), harness.Percentile(t, 50)),
			durRatio(harness.Percentile(q, 99), harness.Percentile(t, 99)))
	}
	fmt.Fprintln(w)
	for _, c := range cfg.Concurrency {
		if q, t := rep.Rate(core.NetworkQUIC, c), rep.Rate(core.NetworkTCP, c); q.N > 0 && t.N > 0 && t.Median > 0 {
			harness.WriteGoal(w, fmt.Sprintf("b2-quic-vs-tcp-setup-rate-%d-workers", c), "loopback", harness.Ratio(q, t), ">=", 1)
		}
	}
}

// serve measures the alknet binary, building it first if bin is empty. A
// binary that does not build is reported as skipped, not as a failure.
func serve(ctx context.Context, w io.Writer, bin string) error {
	fmt.Fprintf(w, "## Idle `alknet serve`\n\n")
	bin, cleanup, err := alknetBinary(ctx, "serve", bin)
	if err != nil {
		fmt.Fprintf(w, "**Skipped:** the alknet binary is not available: %s\n\n", firstLines(err.Error(), 6))
		return nil
	}
	defer cleanup()
	res, err := servebench.MeasureServe(ctx, servebench.ServeOptions{Binary: bin})
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %s\n\n", firstLines(err.Error(), 30))
	}
	fmt.Fprintf(w, "Fresh data directory, empty ALKNET_PASSPHRASE; memory read after 2 s idle; stopped with SIGTERM.\n\n")
	fmt.Fprintf(w, "| start | to `msg=listening` | to first QUIC handshake (goal < 200 ms) | VmRSS (goal < 40 MB) | VmHWM | SIGTERM to exit | exit status |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range []struct {
		name string
		r    servebench.StartResult
	}{{"first (creates the vault)", res.First}, {"second (vault exists)", res.Second}} {
		fmt.Fprintf(w, "| %s | %v | %v | %.1f MB | %.1f MB | %v | %d |\n", s.name,
			s.r.ToLog.Round(time.Millisecond/10), s.r.ToDial.Round(time.Millisecond/10),
			float64(s.r.RSS)/1e6, float64(s.r.HWM)/1e6, s.r.ToExit.Round(time.Millisecond), s.r.ExitCode)
	}
	fmt.Fprintln(w)
	// Last, the goals, judged on the second start (the vault exists, as
	// on every start after the first): ratios to the targets.
	if err == nil {
		harness.WriteGoal(w, "serve-start-to-first-handshake", "loopback", float64(res.Second.ToDial)/float64(200*time.Millisecond), "<=", 1)
		harness.WriteGoal(w, "serve-idle-rss", "loopback", float64(res.Second.RSS)/40e6, "<=", 1)
	}
	return err
}

func mbps(s harness.Stats) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f (%.0f–%.0f)", s.Median, s.Min, s.Max)
}

func ratio(a, b harness.Stats) string {
	if a.N == 0 || b.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f", harness.Ratio(a, b))
}

func durRatio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func buffers(b harness.SocketBuffers) string {
	if b.Err != nil {
		return "unknown: " + b.Err.Error()
	}
	return fmt.Sprintf("%s / %s", formatBytes(int64(b.Rcv)), formatBytes(int64(b.Snd)))
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func errNote(err error) string {
	if err == nil {
		return ""
	}
	return " (" + err.Error() + ")"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], "…")
	}
	return strings.Join(lines, "\n")
}
