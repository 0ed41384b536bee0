package nat

import (
	"fmt"
	"testing"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
)

// TestReachPunch: a client dialing a worker through the head gets a direct
// path when both NATs are cones (the head coordinates a hole punch) and
// stays on the relay when either is symmetric; with --relay-only it stays
// on the relay through cones too. The public namespace's counters tell
// the paths apart: a direct path's bytes are forwarded through it, a
// relayed one's end at the head.
func TestReachPunch(t *testing.T) {
	NeedNAT(t)
	const bytes = 4 << 20
	moved := int64(2 * bytes) // perf sends bytes each way
	for _, tc := range []struct {
		worker, client Kind
		relayOnly      bool
		direct         bool
	}{
		{Cone, Cone, false, true},
		{Cone, Cone, true, false},
		{Cone, Symmetric, false, false},
		{Symmetric, Cone, false, false},
	} {
		name := fmt.Sprintf("%v-%v", tc.worker, tc.client)
		if tc.relayOnly {
			name += "-relay-only"
		}
		t.Run(name, func(t *testing.T) {
			r := startTestRig(t, tc.worker, tc.client)
			ctx := benchtest.TestContext(t)
			args := append([]string{"perf", r.WorkerID, "--bytes", fmt.Sprint(bytes)}, r.ViaPunch()...)
			if tc.relayOnly {
				args = append(args, "--relay-only")
			}
			before, err := r.Top.Crossing(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if out, err := r.Alknet(ctx, 0, "", args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			after, err := r.Top.Crossing(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fwd, local := after.Forwarded-before.Forwarded, after.Local-before.Local
			t.Logf("the public namespace forwarded %d bytes, the head took %d", fwd, local)
			if direct := fwd >= moved && local < moved/8; direct != tc.direct {
				t.Errorf("direct path: %v, want %v (forwarded %d, to the head %d, perf moved %d)", direct, tc.direct, fwd, local, moved)
			}
			if relayed := local >= moved && fwd < moved/8; relayed == tc.direct {
				t.Errorf("relayed path: %v, want %v (forwarded %d, to the head %d, perf moved %d)", relayed, !tc.direct, fwd, local, moved)
			}
		})
	}
}
