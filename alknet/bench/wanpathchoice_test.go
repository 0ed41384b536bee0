package bench

import (
	"context"
	"testing"
	"time"
)

// TestPathChoiceOnEmulator: on the lossy profile a first alknet perf over
// QUIC finds it bound by loss and remembers TCP+TLS, and the next command
// uses TCP+TLS at >= 5x QUIC's goodput; on the clean wan profile both stay
// on QUIC. Needs root and TUN (skipped with a message elsewhere); about a
// minute.
func TestPathChoiceOnEmulator(t *testing.T) {
	needLinkEmulator(t)
	if testing.Short() {
		t.Skip("path choice on the emulator: about a minute")
	}
	bin := buildAlknetOnce(t)
	for _, p := range []LinkProfile{ProfileLossy, ProfileWAN} {
		t.Run(p.Name, func(t *testing.T) {
			l := startLink(t, p)
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			start := time.Now()
			r, err := MeasurePathChoice(ctx, l, bin, 8<<20)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s in %v: first run QUIC %.1f Mbit/s (switched %v), next run %s %.1f Mbit/s",
				p.Name, time.Since(start).Round(time.Millisecond), r.QUIC*8/1e6, r.Switched, r.Transport, r.Next*8/1e6)
			if want := pathChoiceWant(l.Profile()); r.Transport != want || r.Switched != (want == "tcp+tls") {
				t.Fatalf("next run used %s (switched %v), want %s", r.Transport, r.Switched, want)
			}
			if r.Transport == "tcp+tls" && r.Next < pathChoiceGoalLossy*r.QUIC {
				t.Errorf("TCP+TLS %.1f Mbit/s, not %dx QUIC's %.1f", r.Next*8/1e6, pathChoiceGoalLossy, r.QUIC*8/1e6)
			}
		})
	}
}
