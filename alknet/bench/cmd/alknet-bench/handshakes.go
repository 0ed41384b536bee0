package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/wan"
)

// Flags of the handshakes scenario (-only handshakes).
var handshakeProfiles = flag.String("handshake-profiles", "wan", "handshakes: comma-separated link profiles")

// handshakesScenario times short client commands (a call, `alknet ssh
// HOST true`, OpenSSH's) across emulated paths, fresh and resumed (root
// only). Each case runs -runs times.
func handshakesScenario(ctx context.Context, w io.Writer, runs int, bin string) error {
	profiles, err := netem.ParseLinkProfiles(*handshakeProfiles)
	if err != nil {
		return fmt.Errorf("-handshake-profiles: %w", err)
	}
	bin, cleanup, err := alknetBinary(ctx, "handshakes", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	results, err := wan.RunHandshakes(ctx, bin, profiles, max(runs, 5))
	wan.WriteHandshakesMarkdown(w, results, err)
	return err
}
