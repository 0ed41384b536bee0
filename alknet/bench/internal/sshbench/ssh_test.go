package sshbench

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core/coretest"
)

// TestCompareSSHSmoke runs every SSH test once, tiny, against a real sshd
// and a real `alknet serve` built from this tree, and checks that each
// variant measured something and that nothing is left running (goleak in
// TestMain; the processes are stopped by CompareSSH).
func TestCompareSSHSmoke(t *testing.T) {
	for _, tool := range []string{"ssh", "sftp", "ssh-keygen", "iperf3"} {
		coretest.RequireTool(t, tool)
	}
	if _, err := harness.LookTool("sshd"); err != nil {
		coretest.RequireTool(t, "sshd")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	bin, remove, err := harness.BuildTempAlknet(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	start := time.Now()
	rep, err := CompareSSH(ctx, SSHConfig{Binary: bin, Runs: 1, iperfBytes: 4 << 20, requests: 5, SFTPBytes: 1 << 20, sessions: 1,
		Progress: func(s SSHSample) {
			t.Logf("%v: %s %s %g", time.Since(start).Round(time.Millisecond), s.Test, s.Variant, s.Value)
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CompareSSH took %v", time.Since(start))
	for _, test := range sshTests() {
		if len(rep.variants[test]) == 0 {
			t.Errorf("%s: no variants", test)
		}
		for _, v := range rep.variants[test] {
			if s := rep.stats(test, v); s.N != 1 || s.Median <= 0 {
				t.Errorf("%s %s: %+v, want one positive measurement", test, v, s)
			}
		}
	}
	var md strings.Builder
	rep.WriteMarkdown(&md, nil)
	for _, want := range []string{"## SSH, SOCKS5 and SFTP", "### Tunnel", "| alknet / bare-quic | ≥ 0.9 |", "| alknet-tcp / openssh/aes128-gcm | ≥ 1.0 |", "goal fwd-vs-bare-quic loopback ratio ", "### SFTP put", "### Session set-up"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	if testing.Verbose() {
		os.Stdout.WriteString(md.String())
	}
}

func TestCompareSSHNeedsBinary(t *testing.T) {
	if _, err := CompareSSH(t.Context(), SSHConfig{}); err == nil {
		t.Fatal("CompareSSH without a binary: no error")
	}
	if _, err := CompareSSH(t.Context(), SSHConfig{Binary: "alknet", IperfTime: 1500 * time.Millisecond}); err == nil {
		t.Fatal("CompareSSH with a fractional iperf3 time: no error")
	}
}

func TestPairedRatioSubtractsBase(t *testing.T) {
	rep := &SSHReport{samples: []SSHSample{
		{Run: 1, Test: socks, Variant: variantDirect, Value: 1},
		{Run: 1, Test: socks, Variant: "a", Value: 4},
		{Run: 1, Test: socks, Variant: "b", Value: 2},
		{Run: 2, Test: socks, Variant: "a", Value: 9}, // no base in run 2
		{Run: 2, Test: socks, Variant: "b", Value: 3},
	}}
	if got := rep.pairedRatio(socks, "a", "b", variantDirect); got.N != 1 || got.Median != 3 {
		t.Errorf("with base: %+v, want one ratio of 3", got)
	}
	if got := rep.pairedRatio(socks, "a", "b", ""); got.N != 2 || got.Min != 2 || got.Max != 3 {
		t.Errorf("without base: %+v, want ratios 2 and 3", got)
	}
}
