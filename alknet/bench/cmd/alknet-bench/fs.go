package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/fsbench"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// Flags of the fs scenario (-only fs): `alknet fs add` against dd, and a
// get over alknet/fs against alknet/perf; its rounds are -runs.
var (
	fsBytes = flag.String("fs-bytes", "1GiB", "fs: size of the input file (suffixes KiB, MiB, GiB)")
	fsDir   = flag.String("fs-dir", "", "fs: directory on the disk measured; empty: the temporary directory")
)

// fsScenario runs the fs scenario with the alknet binary bin, building it
// first if bin is empty.
func fsScenario(ctx context.Context, w io.Writer, runs int, bin string) error {
	size, err := parseBytes(*fsBytes)
	if err != nil {
		return fmt.Errorf("-fs-bytes: %w", err)
	}
	bin, cleanup, err := alknetBinary(ctx, "fs", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	rep, err := fsbench.CompareFS(ctx, fsbench.FSConfig{Binary: bin, Bytes: size, Runs: runs, Dir: *fsDir,
		Progress: func(s fsbench.FSSample) {
			fmt.Fprintf(os.Stderr, "fs run %d %-28s %8v, peak %6.1f MB, server peak %6.1f MB\n",
				s.Run, s.Variant, s.Wall.Round(time.Millisecond), float64(s.ClientPeak)/1e6, float64(s.ServerPeak)/1e6)
		}})
	rep.WriteMarkdown(w, err)
	return err
}

// alknetBinary returns bin, or if it is empty an alknet binary built from
// the repository into a temporary directory that cleanup removes; scenario
// names the caller in the progress line.
func alknetBinary(ctx context.Context, scenario, bin string) (path string, cleanup func(), err error) {
	if bin != "" {
		return bin, func() {}, nil
	}
	fmt.Fprintln(os.Stderr, scenario+": building ./alknet")
	path, remove, err := harness.BuildTempAlknet(ctx)
	if err != nil {
		return "", nil, err
	}
	return path, func() { _ = remove() }, nil
}
