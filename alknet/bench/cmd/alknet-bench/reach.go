package main

import (
	"context"
	"flag"
	"io"

	"github.com/alkdev/alknet/alknet/bench/internal/nat"
)

// Flags of the reach scenario (-only reach).
var reachBytes = flag.Int64("reach-bytes", 64<<20, "reach: bytes perf sends each way per run")

// reachScenario measures relayed against direct paths between two homes
// behind NATs in network namespaces (root, nft): throughput, the run time
// of a call, and the head's CPU per relayed Gbit. Each path gets -runs
// runs.
func reachScenario(ctx context.Context, w io.Writer, runs int, bin string) error {
	bin, cleanup, err := alknetBinary(ctx, "reach", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	res, err := nat.RunReach(ctx, bin, nat.ReachOptions{Bytes: *reachBytes, Runs: runs})
	nat.WriteReachMarkdown(w, res, err)
	return err
}
