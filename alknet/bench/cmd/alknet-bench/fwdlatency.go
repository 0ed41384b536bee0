package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/wan"
)

// Flags of the forwarding latency scenario (-only fwdlatency):
//
//	[-fwdlat-profiles wan,bursty] [-fwdlat-connects 20] [-fwdlat-bulk 6s]
var (
	fwdLatProfiles = flag.String("fwdlat-profiles", "wan,bursty", "fwdlatency: comma-separated link profiles")
	fwdLatConnects = flag.Int("fwdlat-connects", 20, "fwdlatency: timed new connections through each forward")
	fwdLatBulk     = flag.Duration("fwdlat-bulk", 6*time.Second, "fwdlatency: length of the bulk download the pings share the tunnel with")
)

// fwdLatencyScenario measures, across emulated paths (root only), the
// connect-to-first-byte time of a new forwarded connection and the ping
// round trips beside a bulk download: `alknet forward -L` against
// `ssh -L` (issue 17 §3).
func fwdLatencyScenario(ctx context.Context, w io.Writer, bin string) error {
	profiles, err := netem.ParseLinkProfiles(*fwdLatProfiles)
	if err != nil {
		return fmt.Errorf("-fwdlat-profiles: %w", err)
	}
	if *fwdLatConnects < 1 || *fwdLatBulk < time.Second {
		return fmt.Errorf("-fwdlat-connects %d, -fwdlat-bulk %v: want at least 1 and 1s", *fwdLatConnects, *fwdLatBulk)
	}
	bin, cleanup, err := alknetBinary(ctx, "fwdlatency", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	results, err := wan.RunForwardLatency(ctx, bin, profiles, wan.ForwardLatencyOptions{
		Connects: *fwdLatConnects,
		Bulk:     *fwdLatBulk,
		Progress: func(msg string) { fmt.Fprintln(os.Stderr, msg) },
	})
	wan.WriteForwardLatencyMarkdown(w, results, err)
	return err
}
