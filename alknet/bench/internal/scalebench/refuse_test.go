package scalebench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// TestConnsRefusedReported: when the node's limits allow fewer
// connections than asked for, the refusals are counted or the connections
// found closed, the report says so, and the goal is missed.
func TestConnsRefusedReported(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs alknet serve")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bin := binary(t)
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		r, err := MeasureConns(ctx, ConnsOptions{Binary: bin, Network: network, N: 12, limit: 4, Idle: 500 * time.Millisecond, Deadline: time.Minute})
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		t.Logf("%s: %d open, %d alive, %d refused (%v)", network, r.Open, r.Alive, r.Refused, r.FirstErr)
		if r.Alive > 4 || r.Refused+(r.Open-r.Alive) < 8 {
			t.Errorf("%s: %d open, %d alive, %d refused: want at most 4 alive and the rest refused or closed", network, r.Open, r.Alive, r.Refused)
		}
		var b strings.Builder
		WriteMarkdown(&b, Report{Conns: []ConnsResult{r}})
		out := b.String()
		if !strings.Contains(out, "missed") {
			t.Errorf("%s: the goal is not missed:\n%s", network, out)
		}
		if r.Refused > 0 && !strings.Contains(out, "the node refused") {
			t.Errorf("%s: the report does not name the refusals:\n%s", network, out)
		}
	}
}
