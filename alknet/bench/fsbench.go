package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FSVariant names one measurement of the fs scenario.
type FSVariant string

// The variants [CompareFS] measures.
const (
	// FSAdd is `alknet fs add` of the input into an empty store, which
	// fsyncs every block (the default).
	FSAdd FSVariant = "alknet fs add"
	// FSAddNoSync is FSAdd with fs.no_sync = true.
	FSAddNoSync FSVariant = "alknet fs add (no_sync)"
	// FSDD is `dd bs=1M conv=fsync` of the input to the same disk.
	FSDD FSVariant = "dd bs=1M conv=fsync"
	// FSGet is `alknet fs cat --node` of the input from a node to
	// /dev/null: the CAR stream over alknet/fs, verified and stored block
	// by block (no_sync) in an empty client store, then read back.
	FSGet FSVariant = "alknet fs cat --node (get)"
	// FSPerf is the download half of `alknet perf --streams 1` between the
	// same two data dirs: raw stream throughput.
	FSPerf FSVariant = "alknet perf, download"
)

// AllFSVariants returns every variant, in the order the first round runs
// them.
func AllFSVariants() []FSVariant { return []FSVariant{FSAdd, FSAddNoSync, FSDD, FSGet, FSPerf} }

// FSConfig is an interleaved run of the fs scenario.
type FSConfig struct {
	// Binary is the alknet executable; required.
	Binary string
	// Bytes is the size of the random input file; zero means 1 GiB.
	Bytes int64
	// Runs is how many rounds run; zero means 3.
	Runs int
	// Dir is where the input, the stores and dd's output live (the disk
	// measured); empty means os.TempDir().
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
	Config  FSConfig
	Samples []FSSample
}

// fsListening is the node's ready line, with its address and NodeID.
var fsListening = regexp.MustCompile(`msg=listening addr=(\S+) node=(\S+)`)

// perfDownload is alknet perf's download line.
var perfDownload = regexp.MustCompile(`download\s+\d+ bytes in (\S+):`)

// fsRig is the fixed part of a run: the input, and a node holding it.
type fsRig struct {
	cfg    FSConfig
	work   string
	input  string
	client string // the client's data dir
	root   string // the input's CID
	node   *child
	addr   string
	place  rigPlace // where the node and the clients run
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
	rep := &FSReport{Config: cfg}
	if cfg.Binary == "" {
		return rep, errors.New("bench: fs: no alknet binary")
	}
	work, err := os.MkdirTemp(cfg.Dir, "alknet-bench-fs-")
	if err != nil {
		return rep, err
	}
	defer os.RemoveAll(work)
	r := &fsRig{cfg: cfg, work: work, input: filepath.Join(work, "input"), client: filepath.Join(work, "client")}
	if err := r.setUp(ctx); err != nil {
		return rep, err
	}
	defer r.node.stop()

	variants := AllFSVariants()
	for run := 1; run <= cfg.Runs; run++ {
		for i := range variants {
			v := variants[(i+run-1)%len(variants)]
			s, err := r.measure(ctx, v)
			if err != nil {
				return rep, fmt.Errorf("bench: fs run %d, %s: %w", run, v, err)
			}
			s.Run = run
			rep.Samples = append(rep.Samples, s)
			if cfg.Progress != nil {
				cfg.Progress(s)
			}
		}
	}
	return rep, r.node.stop()
}

// setUp writes the input, adds it to the node's store, and starts the
// node with the client allowed fs:read and perf.
func (r *fsRig) setUp(ctx context.Context) error {
	if err := writeRandom(r.input, r.cfg.Bytes); err != nil {
		return err
	}
	_, _, out, err := timeCommand(ctx, r.cfg.Binary, "id", "--data-dir", r.client)
	if err != nil {
		return err
	}
	clientID, _, _ := strings.Cut(string(out), "\n")
	server := filepath.Join(r.work, "server")
	if err := os.MkdirAll(server, 0o700); err != nil {
		return err
	}
	peer := fmt.Sprintf("[[peers]]\nid = \"client\"\nkeys = [%q]\nscopes = [\"fs:read\", \"perf\"]\n", strings.TrimSpace(clientID))
	if err := os.WriteFile(filepath.Join(server, "alknet.toml"), []byte(peer+"[fs]\nno_sync = true\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.client, "alknet.toml"), []byte("[fs]\nno_sync = true\n"), 0o600); err != nil {
		return err
	}
	_, _, out, err = timeCommand(ctx, r.cfg.Binary, "fs", "add", "-q", "--data-dir", server, r.input)
	if err != nil {
		return err
	}
	r.root = strings.TrimSpace(string(out))
	name, args := r.place.serverCmd(r.cfg.Binary, "serve", "--data-dir", server, "--listen", net.JoinHostPort(r.place.addr(), "0"))
	node, m, err := startChild(ctx, fsListening, name, args...)
	if err != nil {
		return err
	}
	r.node, r.addr = node, m[2]+"@"+m[1]
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
func (r *fsRig) measure(ctx context.Context, v FSVariant) (FSSample, error) {
	s := FSSample{Variant: v}
	var err error
	switch v {
	case FSAdd, FSAddNoSync:
		dir := filepath.Join(r.work, "add")
		defer os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return s, err
		}
		if v == FSAddNoSync {
			if err := os.WriteFile(filepath.Join(dir, "alknet.toml"), []byte("[fs]\nno_sync = true\n"), 0o600); err != nil {
				return s, err
			}
		}
		s.Wall, s.ClientPeak, _, err = timeCommand(ctx, r.cfg.Binary, "fs", "add", "-q", "--data-dir", dir, r.input)
	case FSDD:
		out := filepath.Join(r.work, "dd.out")
		defer os.Remove(out)
		s.Wall, s.ClientPeak, _, err = timeCommand(ctx, "dd", "if="+r.input, "of="+out, "bs=1M", "conv=fsync", "status=none")
	case FSGet, FSPerf:
		if err := os.RemoveAll(filepath.Join(r.client, "fs")); err != nil {
			return s, err
		}
		if err := resetHWM(r.node.cmd.Process.Pid); err != nil {
			return s, err
		}
		var out []byte
		if v == FSGet {
			s.Wall, s.ClientPeak, _, err = timeCommand(ctx, r.cfg.Binary, "fs", "cat", "--data-dir", r.client, "--node", r.addr, r.root)
		} else {
			_, s.ClientPeak, out, err = timeCommand(ctx, r.cfg.Binary, "perf", "--data-dir", r.client, "--streams", "1",
				"--bytes", strconv.FormatInt(r.cfg.Bytes, 10), r.addr)
		}
		if err != nil {
			return s, err
		}
		if v == FSPerf {
			m := perfDownload.FindSubmatch(out)
			if m == nil {
				return s, fmt.Errorf("no download line in %q", out)
			}
			if s.Wall, err = time.ParseDuration(string(m[1])); err != nil {
				return s, err
			}
		}
		_, s.ServerPeak, err = procMemory(r.node.cmd.Process.Pid)
	}
	return s, err
}

// fsCommandTimeout bounds one measured command.
const fsCommandTimeout = 15 * time.Minute

// timeCommand runs name with args, stdout kept only if short (perf's
// report; a cat's bytes go to /dev/null), and returns its wall time and
// peak RSS.
func timeCommand(ctx context.Context, name string, args ...string) (wall time.Duration, peak int64, stdout []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, fsCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = childEnv()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if len(args) > 1 && args[1] == "cat" {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			return 0, 0, nil, err
		}
		defer null.Close()
		cmd.Stdout = null
	}
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		return wall, 0, nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, lastLines(errOut.String(), tailLines))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		peak = ru.Maxrss << 10 // KiB on Linux
	}
	return wall, peak, out.Bytes(), nil
}

// Wall summarizes a variant's wall times, in seconds.
func (r *FSReport) Wall(v FSVariant) Stats {
	return r.summarize(v, func(s FSSample) float64 { return s.Wall.Seconds() })
}

// MBps summarizes a variant's throughput, in MB/s of input.
func (r *FSReport) MBps(v FSVariant) Stats {
	return r.summarize(v, func(s FSSample) float64 { return float64(r.Config.Bytes) / 1e6 / s.Wall.Seconds() })
}

// PeakRSS returns the largest client and server peak RSS of a variant.
func (r *FSReport) PeakRSS(v FSVariant) (client, server int64) {
	for _, s := range r.Samples {
		if s.Variant == v {
			client, server = max(client, s.ClientPeak), max(server, s.ServerPeak)
		}
	}
	return client, server
}

func (r *FSReport) summarize(v FSVariant, f func(FSSample) float64) Stats {
	var xs []float64
	for _, s := range r.Samples {
		if s.Variant == v {
			xs = append(xs, f(s))
		}
	}
	return Summarize(xs)
}

// WriteMarkdown writes the report section; err, if any, is reported as
// the run's failure.
func (r *FSReport) WriteMarkdown(w io.Writer, err error) {
	cfg := r.Config
	fmt.Fprintf(w, "## fs: add and get\n\n")
	fmt.Fprintf(w, "%d MiB of random bytes; input, stores and dd's output on the same disk; %d interleaved rounds, each on empty stores; "+
		"median (min–max). Peak RSS is getrusage's ru_maxrss of the command (which starts at the bench process's own peak, about 20 MB, "+
		"since Linux carries it across the fork and exec) and VmHWM of the serving node, the largest over the rounds. "+
		"The node serves the input from its store with no_sync; the get client stores with no_sync too, so the get measures the transfer, "+
		"the verification and the store, not the disk's fsync. kubo is not part of the run: it is not installed here and not built in the bench module.\n\n",
		cfg.Bytes>>20, cfg.Runs)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "| variant | seconds | MB/s | client peak RSS (goal < 256 MiB) | server peak RSS (goal < 256 MiB) |\n|---|---:|---:|---:|---:|\n")
	for _, v := range AllFSVariants() {
		t, m := r.Wall(v), r.MBps(v)
		if t.N == 0 {
			continue
		}
		c, s := r.PeakRSS(v)
		fmt.Fprintf(w, "| %s | %.2f (%.2f–%.2f) | %.0f (%.0f–%.0f) | %.1f MB | %s |\n", v, t.Median, t.Min, t.Max, m.Median, m.Min, m.Max,
			float64(c)/1e6, map[bool]string{true: "–", false: fmt.Sprintf("%.1f MB", float64(s)/1e6)}[s == 0])
	}
	fmt.Fprintf(w, "\n| ratio of median MB/s | value | goal |\n|---|---:|---|\n")
	for _, q := range []struct {
		a, b FSVariant
		goal string
	}{
		{FSAdd, FSDD, "≥ kubo (not measured)"},
		{FSAddNoSync, FSDD, ""},
		{FSGet, FSPerf, "≥ 0.7"},
	} {
		v := "–"
		if x := Ratio(r.MBps(q.a), r.MBps(q.b)); x != 0 {
			v = fmt.Sprintf("%.2f", x)
		}
		fmt.Fprintf(w, "| %s / %s | %s | %s |\n", q.a, q.b, v, q.goal)
	}
	fmt.Fprintln(w)
}
