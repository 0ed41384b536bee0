package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/alkdev/alknet/alknet/bench/internal/hostile"
)

// hostileHold is how long each attack shape of the hostile scenario
// (-only hostile) holds its connections.
var hostileHold = flag.Duration("hostile-hold", 0, "hostile: how long each attack shape holds its connections (0: 5s)")

// hostileScenario attacks `alknet serve` on its default limits with every
// attack shape, building the binary first if bin is empty.
func hostileScenario(ctx context.Context, w io.Writer, bin string) error {
	bin, cleanup, err := alknetBinary(ctx, "hostile", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	results, err := hostile.MeasureHostile(ctx, hostile.HostileOptions{Binary: bin, Hold: *hostileHold})
	for _, r := range results {
		fmt.Fprintf(os.Stderr, "hostile %-13s rss +%d MB, slowest ping %v\n", r.Shape.Name, r.Growth()>>20, r.MaxPing())
	}
	hostile.WriteHostileMarkdown(w, results, err)
	return err
}
