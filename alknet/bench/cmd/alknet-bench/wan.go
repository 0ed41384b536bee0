package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/wan"
)

// Flags of the wan scenario (-only wan): transfers over emulated paths.
var (
	wanProfiles        = flag.String("wan-profiles", "lan,wan,far,lossy,bursty,heavyloss", "wan: comma-separated link profiles")
	wanDuration        = flag.Duration("wan-duration", 4*time.Second, "wan: length of each TCP transfer (self-check and baseline)")
	wanSwitchBytes     = flag.Int64("wan-switch-bytes", 64<<20, "wan: bytes of each transfer of the send-path reproduction and alknet perf (at most -wan-lossy-bytes on lossy paths)")
	wanPathChoiceBytes = flag.Int64("wan-pathchoice-bytes", 16<<20, "wan: bytes each way of each alknet perf run of the transport-choice transfers")
	wanKnobRounds      = flag.Int("wan-knobs", 0, "wan: rounds of the quic-go knob comparison (bare quic-go, each quic.Config variant in turn); 0: skip it")
	wanKnobBytes       = flag.Int64("wan-knob-bytes", 32<<20, "wan: bytes of each transfer of the quic-go knob comparison")
	wanTransfersFl     = flag.String("wan-transfers", "switch,perf,choice,sftp,forward,git,fs,call",
		"wan: comma-separated transfers besides direct TCP: switch (bare quic-go send path), perf (alknet perf), choice (transport choice), and the report's sftp, forward, git, fs, call")
	wanBytes      = flag.String("wan-bytes", "256MiB", "wan: size of the sftp and fs files on paths without loss")
	wanLossyBytes = flag.String("wan-lossy-bytes", "32MiB", "wan: size of the sftp and fs files on paths with loss, where transfers move a fraction of the rate")
	wanForward    = flag.Duration("wan-forward-time", 5*time.Second, "wan: length of each iperf3 run through a forward, whole seconds")
)

// wanScenario emulates each profile's path between two network namespaces
// (root only), verifies the emulator on it, and runs the transfers.
func wanScenario(ctx context.Context, w io.Writer, bin string) error {
	profiles, err := netem.ParseLinkProfiles(*wanProfiles)
	if err != nil {
		return fmt.Errorf("-wan-profiles: %w", err)
	}
	if *wanDuration < time.Second {
		return fmt.Errorf("-wan-duration %v: want at least 1s", *wanDuration)
	}
	if *wanPathChoiceBytes <= 0 {
		return fmt.Errorf("-wan-pathchoice-bytes %d: want a positive count", *wanPathChoiceBytes)
	}
	bin, cleanup, err := alknetBinary(ctx, "wan", bin)
	if err != nil {
		return err
	}
	defer cleanup()
	transfers, err := wanTransfers(bin)
	if err != nil {
		return err
	}
	results, err := wan.RunWAN(ctx, wan.WANConfig{
		Profiles:  profiles,
		Verify:    netem.VerifyOptions{TCPDuration: *wanDuration},
		Transfers: transfers,
		Progress:  func(msg string) { fmt.Fprintln(os.Stderr, msg) },
	})
	wan.WriteWANMarkdown(w, results, err)
	return err
}

// wanTransfers are the transfers -wan-transfers picks, run on each
// verified profile after the direct TCP baseline; the alknet transfers of
// issue 17 §2-§6 join here.
func wanTransfers(bin string) ([]wan.WANTransfer, error) {
	size, err := parseBytes(*wanBytes)
	if err != nil {
		return nil, fmt.Errorf("-wan-bytes: %w", err)
	}
	lossySize, err := parseBytes(*wanLossyBytes)
	if err != nil {
		return nil, fmt.Errorf("-wan-lossy-bytes: %w", err)
	}
	// The send-path transfers move -wan-switch-bytes on a clean path and
	// at most -wan-lossy-bytes on a lossy one.
	switchLossy := min(*wanSwitchBytes, lossySize)
	work := func(n int64) string { return fmt.Sprintf("%d MiB per transfer", n>>20) }
	ts := []wan.WANTransfer{wan.DirectTCPTransfer(*wanDuration)}
	var report []string
	for _, name := range strings.Split(*wanTransfersFl, ",") {
		var pair []wan.WANTransfer
		switch name = strings.TrimSpace(name); name {
		case "":
		case "switch":
			pair, err = wan.ByLoss(wan.DirectionSwitchTransfers(*wanSwitchBytes), wan.DirectionSwitchTransfers(switchLossy),
				work(*wanSwitchBytes), work(switchLossy)+" (lossy size)")
		case "perf":
			pair, err = wan.ByLoss(wan.AlknetPerfTransfers(bin, *wanSwitchBytes), wan.AlknetPerfTransfers(bin, switchLossy),
				work(*wanSwitchBytes), work(switchLossy)+" (lossy size)")
		case "choice":
			pair = wan.PathChoiceTransfers(bin, *wanPathChoiceBytes)
		default:
			if !slices.Contains(wan.ReportGroups(), name) {
				return nil, fmt.Errorf("-wan-transfers: unknown transfer %q (want switch, perf, choice, %s)", name, strings.Join(wan.ReportGroups(), ", "))
			}
			report = append(report, name)
		}
		if err != nil {
			return nil, err
		}
		ts = append(ts, pair...)
	}
	if *wanKnobRounds > 0 {
		ts = append(ts, wan.QUICKnobTransfers(*wanKnobBytes, *wanKnobRounds)...)
	}
	if len(report) == 0 {
		return ts, nil
	}
	if *wanForward < time.Second {
		return nil, fmt.Errorf("-wan-forward-time %v: want at least 1s", *wanForward)
	}
	rts, err := wan.ReportTransfers(wan.ReportConfig{
		Binary: bin, Groups: report, Bytes: size, LossyBytes: lossySize, ForwardTime: *wanForward, GitCache: *gitCache,
	})
	return append(ts, rts...), err
}
