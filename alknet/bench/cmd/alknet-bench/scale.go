package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/scalebench"
	"github.com/alkdev/alknet/core"
)

// Flags of the scale scenario (-only scale): what grows with the work.
var (
	scaleParts    = flag.String("scale-parts", "conns,workers,fs,git", "scale: parts to run: conns, workers, fs, git")
	scaleConns    = flag.String("scale-conns", "1000,10000", "scale: idle connection counts, each over every -scale-networks")
	scaleNetworks = flag.String("scale-networks", "quic,tcp", "scale: networks of the idle connections")
	scaleIdle     = flag.Duration("scale-idle", 5*time.Second, "scale: how long the connections idle before the node's memory is read")
	scaleDialTime = flag.Duration("scale-dial-deadline", 5*time.Minute, "scale: bound on opening each set of connections")
	scaleWorkers  = flag.String("scale-workers", "2,200", "scale: head sizes (attached workers) compared; the first is the baseline")
	scaleRounds   = flag.Int("scale-rounds", 5, "scale: interleaved rounds of routed calls")
	scaleCalls    = flag.Int("scale-calls", 200, "scale: routed calls per head and round")
	scaleBlocks   = flag.String("scale-blocks", "1000,10000,100000", "scale: fs store sizes in pinned blocks")
	scaleRefs     = flag.String("scale-refs", "100,1000,10000", "scale: git repository sizes in refs")
	scaleRuns     = flag.Int("scale-runs", 3, "scale: timed runs of each fs and git command")
)

// scaleScenario runs the parts of the scale scenario against `alknet
// serve`, building the binary first if bin is empty.
func scaleScenario(ctx context.Context, w io.Writer, bin string) error {
	parts := map[string]bool{}
	for _, p := range strings.Split(*scaleParts, ",") {
		switch p = strings.TrimSpace(p); p {
		case "conns", "workers", "fs", "git":
			parts[p] = true
		default:
			return fmt.Errorf("-scale-parts: unknown part %q (want conns, workers, fs, git)", p)
		}
	}
	conns, err := parseCounts("-scale-conns", *scaleConns)
	if err != nil {
		return err
	}
	workers, err := parseCounts("-scale-workers", *scaleWorkers)
	if err != nil {
		return err
	}
	blocks, err := parseCounts("-scale-blocks", *scaleBlocks)
	if err != nil {
		return err
	}
	refs, err := parseCounts("-scale-refs", *scaleRefs)
	if err != nil {
		return err
	}
	var networks []core.Network
	for _, s := range strings.Split(*scaleNetworks, ",") {
		switch n := core.Network(strings.TrimSpace(s)); n {
		case core.NetworkQUIC, core.NetworkTCP:
			networks = append(networks, n)
		default:
			return fmt.Errorf("-scale-networks: %q: want quic or tcp", s)
		}
	}
	bin, cleanup, err := alknetBinary(ctx, "scale", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	progress := func(s string) { fmt.Fprintln(os.Stderr, s) }
	var rep scalebench.Report
	if parts["conns"] {
	conns:
		for _, n := range conns {
			for _, network := range networks {
				r, err := scalebench.MeasureConns(ctx, scalebench.ConnsOptions{Binary: bin, Network: network, N: n,
					Idle: *scaleIdle, Deadline: *scaleDialTime, Progress: progress})
				if err != nil {
					rep.ConnsErr = fmt.Errorf("%s, %d connections: %w", network, n, err)
					break conns
				}
				rep.Conns = append(rep.Conns, r)
			}
		}
	}
	if parts["workers"] {
		rep.Workers, rep.WorkersErr = scalebench.MeasureWorkers(ctx, scalebench.WorkersOptions{Binary: bin, Workers: workers,
			Rounds: *scaleRounds, Calls: *scaleCalls, Progress: progress})
	}
	if parts["fs"] || parts["git"] {
		opts := scalebench.StoreOptions{Binary: bin, Runs: *scaleRuns, Progress: progress}
		if parts["fs"] {
			opts.Blocks = blocks
		}
		if parts["git"] {
			opts.Refs = refs
		}
		rep.Store, rep.StoreErr = scalebench.MeasureStore(ctx, opts)
	}
	scalebench.WriteMarkdown(w, rep)
	for _, err := range []error{rep.ConnsErr, rep.WorkersErr, rep.StoreErr} {
		if err != nil {
			return err
		}
	}
	return nil
}

// parseCounts reads a comma-separated list of positive counts.
func parseCounts(flag, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q: want positive counts separated by commas", flag, f)
		}
		out = append(out, n)
	}
	return out, nil
}
