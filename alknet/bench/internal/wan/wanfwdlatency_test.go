package wan

import (
	"bytes"
	"regexp"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// TestForwardLatencySmoke runs the forwarding latency benchmark briefly
// across a cheap emulated link (20 ms, 50 Mbit/s, not verified): every
// variant connects, pings and downloads through its forward, the
// connect times are at least the link's round trip (they cross it), and
// the goal lines are printed. It needs root, TUN and OpenSSH.
func TestForwardLatencySmoke(t *testing.T) {
	netem.NeedLinkEmulator(t)
	for _, tool := range []string{"sshd", "ssh", "ssh-keygen"} {
		if _, err := harness.LookTool(tool); err != nil {
			t.Skip(err)
		}
	}
	bin := benchtest.BuildAlknetOnce(t)
	p := netem.LinkProfile{Name: "smoke", RTT: 20 * time.Millisecond, RateBps: 50e6}
	l := netem.StartTestLink(t, p)
	opt := ForwardLatencyOptions{Connects: 2, Bulk: time.Second}
	opt.defaults()
	vs, err := measureForwardLatency(benchtest.TestContext(t), l, bin, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("%d variants, want 3: %+v", len(vs), vs)
	}
	for _, v := range vs {
		if v.err != nil {
			t.Fatalf("%s: %v", v.name, v.err)
		}
		if len(v.connect) != 2 || v.connect[0] < p.RTT {
			t.Errorf("%s: connect times %v, want 2 of at least %v", v.name, v.connect, p.RTT)
		}
		if len(v.idle) == 0 || len(v.loaded) == 0 || v.idle[0] < p.RTT || v.bulkBytesPerSec <= 0 {
			t.Errorf("%s: idle %d pings (min %v), loaded %d, bulk %.0f B/s", v.name, len(v.idle), harness.Percentile(v.idle, 0), len(v.loaded), v.bulkBytesPerSec)
		}
	}
	var out bytes.Buffer
	WriteForwardLatencyMarkdown(&out, []PathForwardLatency{{profile: p, variants: vs}}, nil)
	t.Log(out.String())
	for _, g := range []string{"fwd-connect-first-byte", "fwd-hol-p99"} {
		if !regexp.MustCompile(`(?m)^goal ` + g + ` smoke ratio [0-9.]+ target <=0.5 (met|missed)$`).MatchString(out.String()) {
			t.Errorf("no %s goal line in\n%s", g, out.String())
		}
	}
}
