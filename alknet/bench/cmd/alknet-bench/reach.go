package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/alkdev/alknet/alknet/bench/internal/nat"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// Flags of the reach scenario (-only reach).
var (
	reachBytes    = flag.Int64("reach-bytes", 64<<20, "reach: bytes perf sends each way per run")
	reachProfiles = flag.String("reach-profiles", "ns,wan", "reach: ns (plain namespaces) and link profiles to put between the client and the rest")
)

// reachScenario measures relayed against direct paths between two homes
// behind NATs in network namespaces (root, nft; a link profile also needs
// /dev/net/tun): throughput, the run time of a call, and the head's CPU
// per relayed Gbit. Each path gets -runs runs.
func reachScenario(ctx context.Context, w io.Writer, runs int, bin string) error {
	var links []*netem.LinkProfile
	for _, name := range strings.Split(*reachProfiles, ",") {
		if name = strings.TrimSpace(name); name == "ns" {
			links = append(links, nil)
			continue
		}
		p, err := netem.ParseLinkProfiles(name)
		if err != nil {
			return fmt.Errorf("-reach-profiles: %w", err)
		}
		links = append(links, &p[0])
	}
	bin, cleanup, err := alknetBinary(ctx, "reach", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	var errs []error
	for _, l := range links {
		res, err := nat.RunReach(ctx, bin, nat.ReachOptions{Bytes: *reachBytes, Runs: runs, Link: l})
		nat.WriteReachMarkdown(w, res, err)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
