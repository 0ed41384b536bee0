package fsbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// FSVariant names one measurement of the fs scenario.
type FSVariant string

// The variants [CompareFS] measures.
const (
	// fsAdd is `alknet fs add` of the input into an empty store, which
	// fsyncs every block (the default).
	fsAdd FSVariant = "alknet fs add"
	// fsAddNoSync is FSAdd with fs.no_sync = true.
	fsAddNoSync FSVariant = "alknet fs add (no_sync)"
	// fsdd is `dd bs=1M conv=fsync` of the input to the same disk.
	fsdd FSVariant = "dd bs=1M conv=fsync"
	// fsGet is `alknet fs cat --node` of the input from a node to
	// /dev/null: the CAR stream over alknet/fs, verified and stored block
	// by block (no_sync) in an empty client store, then read back.
	fsGet FSVariant = "alknet fs cat --node (get)"
	// fsPerf is the download half of `alknet perf --streams 1` between the
	// same two data dirs: raw stream throughput.
	fsPerf FSVariant = "alknet perf, download"
)

// allFSVariants returns every variant, in the order the first round runs
// them.
func allFSVariants() []FSVariant { return []FSVariant{fsAdd, fsAddNoSync, fsdd, fsGet, fsPerf} }

// FSConfig is an interleaved run of the fs scenario.
type FSConfig struct {
	// Binary is the alknet executable; required.
	Binary string
	// Bytes is the size of the random input file; zero means 1 GiB.
	Bytes int64
	// Runs is how many rounds run; zero means 3.
	Runs int
	// Dir is where the input, the stores and dd's output live (the disk
	// measured); empty means os.TempDir(). The stores of every round stay
	// there until the run ends (see [FSRig.retire]): up to 3 × Bytes × Runs.
	Dir string
	// Progress, if set, is called after each measurement, from the calling
	// goroutine.
	Progress func(FSSample)
}

// FSSample is one measured command.
type FSSample struct {
	// Run counts rounds from 1.
	Run     int
	Variant FSVariant
	// Wall is the command's run time; for FSPerf, perf's own download time.
	Wall time.Duration
	// ClientPeak is the command's peak RSS (getrusage ru_maxrss), bytes.
	ClientPeak int64
	// ServerPeak is the node's VmHWM over the command, bytes; 0 for the
	// local variants.
	ServerPeak int64
}

// FSReport holds every sample of a run.
type FSReport struct {
	config  FSConfig
	samples []FSSample
}

// fsListening is the node's ready line, with its address and NodeID.
var fsListening = regexp.MustCompile(`msg=listening addr=(\S+) node=(\S+)`)

// PerfDownload is alknet perf's download line.
var PerfDownload = regexp.MustCompile(`download\s+\d+ bytes in (\S+):`)

// FSRig is the fixed part of a run: the input, and a node holding it.
type FSRig struct {
	Cfg    FSConfig
	Work   string
	Input  string
	Client string // the client's data dir
	Root   string // the input's CID
	Node   *harness.Child
	Addr   string
	Place  netem.Place // where the node and the clients run
	old    int         // stores retired so far
}

// retire moves the store dir out of the way, into the work directory that
// is deleted when the run ends, instead of deleting it: ext4 without a
// journal (as on the machine of docs/benchmarks.md) skips, one by one, the
// inodes freed in the last 30 seconds on every file it creates, so a store
// deleted just before a measurement (a thousand blocks, their directories)
// made the next one's creates pay for it, an artifact of the bench and not
// of the store: a get's client spent a sixth of its CPU scanning them.
func (r *FSRig) retire(dir string) error {
	r.old++
	err := os.Rename(dir, filepath.Join(r.Work, fmt.Sprintf("old-%d", r.old)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// CompareFS runs cfg: each round measures every variant once, starting
// with the next one each round.
func CompareFS(ctx context.Context, cfg FSConfig) (*FSReport, error) {
	if cfg.Bytes == 0 {
		cfg.Bytes = 1 << 30
	}
	if cfg.Runs == 0 {
		cfg.Runs = 3
	}
	rep := &FSReport{config: cfg}
	if cfg.Binary == "" {
		return rep, errors.New("bench: fs: no alknet binary")
	}
	work, err := os.MkdirTemp(cfg.Dir, "alknet-bench-fs-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(work)
	r := &FSRig{Cfg: cfg, Work: work, Input: filepath.Join(work, "input"), Client: filepath.Join(work, "client")}
	if err := r.SetUp(ctx); err != nil {
		return rep, err
	}
	defer r.Node.Stop()

	variants := allFSVariants()
	for run := 1; run <= cfg.Runs; run++ {
		for i := range variants {
			v := variants[(i+run-1)%len(variants)]
			s, err := r.measure(ctx, v)
			if err != nil {
				return rep, fmt.Errorf("bench: fs run %d, %s: %w", run, v, err)
			}
			s.Run = run
			rep.samples = append(rep.samples, s)
			if cfg.Progress != nil {
				cfg.Progress(s)
			}
		}
	}
	return rep, r.Node.Stop()
}

// SetUp writes the input, adds it to the node's store, and starts the
// node with the client allowed fs:read and perf.
func (r *FSRig) SetUp(ctx context.Context) error {
	if err := writeRandom(r.Input, r.Cfg.Bytes); err != nil {
		return err
	}
	clientID, _, err := harness.AlknetID(ctx, r.Cfg.Binary, r.Client)
	if err != nil {
		return err
	}
	server := filepath.Join(r.Work, "server")
	if err := os.MkdirAll(server, 0o700); err != nil {
		return err
	}
	peer := fmt.Sprintf("[[peers]]\nid = \"client\"\nkeys = [%q]\nscopes = [\"fs:read\", \"perf\"]\n", strings.TrimSpace(clientID))
	if err := os.WriteFile(filepath.Join(server, "alknet.toml"), []byte(peer+"[fs]\nno_sync = true\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.Client, "alknet.toml"), []byte("[fs]\nno_sync = true\n"), 0o600); err != nil {
		return err
	}
	_, _, out, err := harness.TimeCommand(ctx, r.Cfg.Binary, "fs", "add", "-q", "--data-dir", server, r.Input)
	if err != nil {
		return err
	}
	r.Root = strings.TrimSpace(string(out))
	name, args := r.Place.ServerCmd(r.Cfg.Binary, "serve", "--data-dir", server, "--listen", net.JoinHostPort(r.Place.Addr(), "0"))
	node, m, err := harness.StartChild(ctx, fsListening, name, args...)
	if err != nil {
		return err
	}
	r.Node, r.Addr = node, m[2]+"@"+m[1]
	return nil
}

// writeRandom writes n reproducible random bytes to path and syncs them.
func writeRandom(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, rand.NewChaCha8([32]byte{'f', 's'}), n)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// measure runs one variant on fresh output.
func (r *FSRig) measure(ctx context.Context, v FSVariant) (FSSample, error) {
	s := FSSample{Variant: v}
	var err error
	switch v {
	case fsAdd, fsAddNoSync:
		dir := filepath.Join(r.Work, "add")
		defer r.retire(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return s, err
		}
		if v == fsAddNoSync {
			if err := os.WriteFile(filepath.Join(dir, "alknet.toml"), []byte("[fs]\nno_sync = true\n"), 0o600); err != nil {
				return s, err
			}
		}
		s.Wall, s.ClientPeak, _, err = harness.TimeCommand(ctx, r.Cfg.Binary, "fs", "add", "-q", "--data-dir", dir, r.Input)
	case fsdd:
		out := filepath.Join(r.Work, "dd.out")
		defer os.Remove(out)
		s.Wall, s.ClientPeak, _, err = harness.TimeCommand(ctx, "dd", "if="+r.Input, "of="+out, "bs=1M", "conv=fsync", "status=none")
	case fsGet, fsPerf:
		if err := r.retire(filepath.Join(r.Client, "fs")); err != nil {
			return s, err
		}
		if err := harness.ResetHWM(r.Node.Cmd.Process.Pid); err != nil {
			return s, err
		}
		// Both over QUIC: with the network chosen the dialer does not
		// watch the path, so neither moves to TCP+TLS when it judges a
		// loaded loopback lossy (the get would then run on the faster
		// transport, or the perf on the other one).
		var out []byte
		if v == fsGet {
			s.Wall, s.ClientPeak, _, err = harness.TimeCommand(ctx, r.Cfg.Binary, "fs", "cat", "--data-dir", r.Client, "--network", "quic",
				"--node", r.Addr, r.Root)
		} else {
			_, s.ClientPeak, out, err = harness.TimeCommand(ctx, r.Cfg.Binary, "perf", "--data-dir", r.Client, "--network", "quic",
				"--streams", "1", "--bytes", strconv.FormatInt(r.Cfg.Bytes, 10), r.Addr)
		}
		if err != nil {
			return s, err
		}
		if v == fsPerf {
			m := PerfDownload.FindSubmatch(out)
			if m == nil {
				return s, fmt.Errorf("no download line in %q", out)
			}
			if s.Wall, err = time.ParseDuration(string(m[1])); err != nil {
				return s, err
			}
		}
		_, s.ServerPeak, err = harness.ProcMemory(r.Node.Cmd.Process.Pid)
	}
	return s, err
}

// wall summarizes a variant's wall times, in seconds.
func (r *FSReport) wall(v FSVariant) harness.Stats {
	return r.summarize(v, func(s FSSample) float64 { return s.Wall.Seconds() })
}

// mBps summarizes a variant's throughput, in MB/s of input.
func (r *FSReport) mBps(v FSVariant) harness.Stats {
	return r.summarize(v, func(s FSSample) float64 { return float64(r.config.Bytes) / 1e6 / s.Wall.Seconds() })
}

// peakRSS returns the largest client and server peak RSS of a variant.
func (r *FSReport) peakRSS(v FSVariant) (client, server int64) {
	for _, s := range r.samples {
		if s.Variant == v {
			client, server = max(client, s.ClientPeak), max(server, s.ServerPeak)
		}
	}
	return client, server
}

func (r *FSReport) summarize(v FSVariant, f func(FSSample) float64) harness.Stats {
	var xs []float64
	for _, s := range r.samples {
		if s.Variant == v {
			xs = append(xs, f(s))
		}
	}
	return harness.Summarize(xs)
}

// WriteMarkdown writes the report section; err, if any, is reported as
// the run's failure.
func (r *FSReport) WriteMarkdown(w io.Writer, err error) {
	cfg := r.config
	fmt.Fprintf(w, "## fs: add and get\n\n")
	fmt.Fprintf(w, "%d MiB of random bytes; input, stores and dd's output on the same disk; %d interleaved rounds, each on empty stores; "+
		"median (min–max). Peak RSS is getrusage's ru_maxrss of the command (which starts at the bench process's own peak, about 20 MB, "+
		"since Linux carries it across the fork and exec) and VmHWM of the serving node, the largest over the rounds. "+
		"The node serves the input from its store with no_sync; the get client stores with no_sync too, so the get measures the transfer, "+
		"the verification and the store, not the disk's fsync. The get and the perf both run over QUIC (--network quic: no move to TCP+TLS). "+
		"A store's directory is moved aside after its measurement and deleted when the run ends, not before the next measurement "+
		"(ext4 without a journal makes each create skip the inodes freed in the last 30 s). "+
		"kubo is not part of the run: it is not installed here and not built in the bench module.\n\n",
		cfg.Bytes>>20, cfg.Runs)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "| variant | seconds | MB/s | client peak RSS (goal < 256 MiB) | server peak RSS (goal < 256 MiB) |\n|---|---:|---:|---:|---:|\n")
	for _, v := range allFSVariants() {
		t, m := r.wall(v), r.mBps(v)
		if t.N == 0 {
			continue
		}
		c, s := r.peakRSS(v)
		fmt.Fprintf(w, "| %s | %.2f (%.2f–%.2f) | %.0f (%.0f–%.0f) | %.1f MB | %s |\n", v, t.Median, t.Min, t.Max, m.Median, m.Min, m.Max,
			float64(c)/1e6, map[bool]string{true: "–", false: fmt.Sprintf("%.1f MB", float64(s)/1e6)}[s == 0])
	}
	fmt.Fprintf(w, "\n| ratio of median MB/s | value | goal |\n|---|---:|---|\n")
	for _, q := range fsRatios {
		v, goal := "–", q.note
		if x := harness.Ratio(r.mBps(q.a), r.mBps(q.b)); x != 0 {
			v = fmt.Sprintf("%.2f", x)
		}
		if q.goal != "" {
			goal = fmt.Sprintf("≥ %g", q.target)
		}
		fmt.Fprintf(w, "| %s / %s | %s | %s |\n", q.a, q.b, v, goal)
	}
	fmt.Fprintln(w)
	r.writeGoals(w)
}

// fsRatios are the report's ratios; those with a goal name are issue 18's
// goals, printed as goal lines too.
var fsRatios = []struct {
	a, b   FSVariant
	goal   string
	target float64
	note   string
}{
	{a: fsAdd, b: fsdd, note: "≥ kubo (not measured)"},
	{a: fsAddNoSync, b: fsdd, goal: "fs-add-nosync-vs-dd", target: 0.5},
	{a: fsGet, b: fsPerf, goal: "fs-get-vs-perf", target: 0.7},
}

// writeGoals prints a goal line per goal measured: the ratio of the median
// MB/s, as the table, profile "loopback".
func (r *FSReport) writeGoals(w io.Writer) {
	for _, q := range fsRatios {
		if x := harness.Ratio(r.mBps(q.a), r.mBps(q.b)); q.goal != "" && x != 0 {
			harness.WriteGoal(w, q.goal, "loopback", x, ">=", q.target)
		}
	}
}
