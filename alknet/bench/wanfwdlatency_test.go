package bench

import (
	"bytes"
	"regexp"
	"testing"
	"time"
)

// TestForwardLatencySmoke runs the forwarding latency benchmark briefly
// across a cheap emulated link (20 ms, 50 Mbit/s, not verified): every
// variant connects, pings and downloads through its forward, the
// connect times are at least the link's round trip (they cross it), and
// the goal lines are printed. It needs root, TUN and OpenSSH.
func TestForwardLatencySmoke(t *testing.T) {
	needLinkEmulator(t)
	for _, tool := range []string{"sshd", "ssh", "ssh-keygen"} {
		if _, err := lookTool(tool); err != nil {
			t.Skip(err)
		}
	}
	bin := buildAlknetOnce(t)
	p := LinkProfile{Name: "smoke", RTT: 20 * time.Millisecond, RateBps: 50e6}
	l := startLink(t, p)
	opt := ForwardLatencyOptions{Connects: 2, Bulk: time.Second}
	opt.defaults()
	vs, err := measureForwardLatency(testContext(t), l, bin, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 {
		t.Fatalf("%d variants, want 3: %+v", len(vs), vs)
	}
	for _, v := range vs {
		if v.Err != nil {
			t.Fatalf("%s: %v", v.Name, v.Err)
		}
		if len(v.Connect) != 2 || v.Connect[0] < p.RTT {
			t.Errorf("%s: connect times %v, want 2 of at least %v", v.Name, v.Connect, p.RTT)
		}
		if len(v.Idle) == 0 || len(v.Loaded) == 0 || v.Idle[0] < p.RTT || v.BulkBytesPerSec <= 0 {
			t.Errorf("%s: idle %d pings (min %v), loaded %d, bulk %.0f B/s", v.Name, len(v.Idle), Percentile(v.Idle, 0), len(v.Loaded), v.BulkBytesPerSec)
		}
	}
	var out bytes.Buffer
	WriteForwardLatencyMarkdown(&out, []PathForwardLatency{{Profile: p, Variants: vs}}, nil)
	t.Log(out.String())
	for _, g := range []string{"fwd-connect-first-byte", "fwd-hol-p99"} {
		if !regexp.MustCompile(`(?m)^goal ` + g + ` smoke ratio [0-9.]+ target <=0.5 (met|missed)$`).MatchString(out.String()) {
			t.Errorf("no %s goal line in\n%s", g, out.String())
		}
	}
}
