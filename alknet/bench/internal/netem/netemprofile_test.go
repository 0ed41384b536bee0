package netem

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestLinkProfileDefaults(t *testing.T) {
	p, err := ProfileWAN.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if p.mtu != 1500 || p.QueueBytes != 1000000 {
		t.Errorf("wan: MTU %d queue %d, want 1500 and one BDP (1000000)", p.mtu, p.QueueBytes)
	}
	if p, _ := profileLAN.withDefaults(); p.QueueBytes != 64*1500 {
		t.Errorf("lan: queue %d, want 64 packets", p.QueueBytes)
	}
	if got := profileBursty.MeanLoss(); math.Abs(got-0.01) > 1e-9 {
		t.Errorf("bursty mean loss %v, want 0.01", got)
	}
	for _, bad := range []LinkProfile{
		{mtu: 100}, {RTT: -1}, {RTT: time.Millisecond, jitter: time.Millisecond}, {RateBps: -1},
		{Loss: 1}, {Loss: math.NaN()}, {QueueBytes: -1}, {RateBps: 1e6, QueueBytes: 100},
		{GE: &GilbertElliott{P: 0.1}}, {GE: &GilbertElliott{P: 2, R: 0.5}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestParseLinkProfiles(t *testing.T) {
	ps, err := ParseLinkProfiles("wan, lossy")
	if err != nil || len(ps) != 2 || ps[0].Name != "wan" || ps[1].Name != "lossy" {
		t.Errorf("got %v, %v", ps, err)
	}
	if _, err := ParseLinkProfiles("wan,moon"); err == nil || !strings.Contains(err.Error(), "moon") {
		t.Errorf("unknown profile: %v", err)
	}
}
