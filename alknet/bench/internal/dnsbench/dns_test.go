package dnsbench

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestCompareDNSGo is the DNS comparison's smoke test with the Go load
// generator only (no dnsperf needed): both servers start, answer the mix
// alike, and every variant answers queries without loss in a short round.
func TestCompareDNSGo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loads := dnsLoads(false)
	var progress []DNSResult
	rep, err := CompareDNS(ctx, DNSConfig{Loads: loads, Duration: 200 * time.Millisecond, Runs: 2, Clients: 2, Inflight: 4,
		Progress: func(r DNSResult) { progress = append(progress, r) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.runs) != 2*len(loads) || len(progress) != len(rep.runs) {
		t.Fatalf("%d runs, %d progress calls; want %d", len(rep.runs), len(progress), 2*len(loads))
	}
	if rep.runs[0].Load != loads[0] || rep.runs[len(loads)].Load != loads[1] {
		t.Errorf("round 2 starts with %v, want the order rotated to %v", rep.runs[len(loads)].Load, loads[1])
	}
	for _, r := range rep.runs {
		if r.queries == 0 || r.Rate() <= 0 || r.P50 <= 0 || r.P99 < r.P50 {
			t.Errorf("%s run %d: %d queries, %.0f/s, p50 %v, p99 %v", r.Load, r.Run, r.queries, r.Rate(), r.P50, r.P99)
		}
	}
	if got := rep.RateRatio(loads[0], loads[1]); got.N != 2 || got.Median <= 0 {
		t.Errorf("alknet/coredns rate ratio %+v, want 2 rounds", got)
	}
	if rep.Rate(DNSLoad{AlknetDNS, DoQ, GoLoad}).N != 2 {
		t.Error("no DoQ rate")
	}
}

// TestCompareDNSRejects checks the variants the comparison cannot run.
func TestCompareDNSRejects(t *testing.T) {
	for _, l := range []DNSLoad{
		{CoreDNS, DoQ, GoLoad},
		{AlknetDNS, DoQ, Dnsperf},
		{AlknetDNS, "tcp", GoLoad},
		{"bind", UDP, GoLoad},
		{AlknetDNS, UDP, "kdig"},
	} {
		if _, err := CompareDNS(context.Background(), DNSConfig{Loads: []DNSLoad{l}, Dnsperf: "/nonexistent/dnsperf"}); err == nil {
			t.Errorf("%s: no error", l)
		}
	}
}

// TestParseDnsperf reads dnsperf 2.10's -v output.
func TestParseDnsperf(t *testing.T) {
	out := `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 39808 -d q.txt -l 1 -v
> NOERROR www.bench.example A 0.000112
> NOERROR www.bench.example AAAA 0.000029
> NXDOMAIN nope.bench.example A 0.000035
> T bench.example MX
> NOERROR bench.example SOA 0.000045
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         5
  Queries completed:    4 (80.00%)
  Queries lost:         1 (20.00%)

  Response codes:       NOERROR 3 (75.00%), NXDOMAIN 1 (25.00%)
  Run time (s):         1.001165
  Queries per second:   3.995
`
	r, err := parseDnsperf(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if r.queries != 4 || r.Lost != 1 || r.elapsed != 1001165*time.Microsecond {
		t.Errorf("got %+v", r)
	}
	if r.P50 != 35*time.Microsecond || r.P99 != 112*time.Microsecond {
		t.Errorf("p50 %v p99 %v, want 35µs 112µs", r.P50, r.P99)
	}
	for _, bad := range []string{"", "> NOERROR x A fast\nRun time (s): 1\n", "Queries lost: many\n"} {
		if _, err := parseDnsperf(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestCompareDNSDnsperf makes one short round with dnsperf when it is
// installed. dnsperf is a benchmark tool, not one CI installs, so its
// absence skips the test even with ALKNET_REQUIRE_INTEROP=1.
func TestCompareDNSDnsperf(t *testing.T) {
	bin, err := exec.LookPath("dnsperf")
	if err != nil {
		t.Skip("dnsperf not installed (apt-get install dnsperf)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	loads := []DNSLoad{{AlknetDNS, UDP, Dnsperf}, {CoreDNS, UDP, Dnsperf}, {AlknetDNS, DoT, Dnsperf}}
	rep, err := CompareDNS(ctx, DNSConfig{Loads: loads, Dnsperf: bin, Duration: time.Second, Runs: 1, Clients: 2, Inflight: 4})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.DnsperfVersion, "Version ") {
		t.Errorf("version %q", rep.DnsperfVersion)
	}
	for _, r := range rep.runs {
		if r.queries == 0 || r.P99 <= 0 {
			t.Errorf("%s: %d queries, p99 %v", r.Load, r.queries, r.P99)
		}
	}
}
