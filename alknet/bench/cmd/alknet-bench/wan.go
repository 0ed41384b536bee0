package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alkdev/alknet/alknet/bench"
)

// Flags of the wan scenario (-only wan): transfers over emulated paths.
var (
	wanProfiles        = flag.String("wan-profiles", "lan,wan,far,lossy,bursty", "wan: comma-separated link profiles")
	wanDuration        = flag.Duration("wan-duration", 4*time.Second, "wan: length of each TCP transfer (self-check and baseline)")
	wanPathChoiceBytes = flag.Int64("wan-pathchoice-bytes", 16<<20, "wan: bytes each way of each alknet perf run of the transport-choice transfers")
	wanKnobRounds      = flag.Int("wan-knobs", 0, "wan: rounds of the quic-go knob comparison (bare quic-go, each quic.Config variant in turn); 0: skip it")
	wanKnobBytes       = flag.Int64("wan-knob-bytes", 32<<20, "wan: bytes of each transfer of the quic-go knob comparison")
	wanSwitchBytes     = flag.Int64("wan-switch-bytes", 64<<20, "wan: bytes of each bare quic-go transfer of the send-path reproduction")
)

// wanScenario emulates each profile's path between two network namespaces
// (root only), verifies the emulator on it, and runs the transfers.
func wanScenario(ctx context.Context, w io.Writer, bin string) error {
	profiles, err := bench.ParseLinkProfiles(*wanProfiles)
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
	results, err := bench.RunWAN(ctx, bench.WANConfig{
		Profiles:  profiles,
		Verify:    bench.VerifyOptions{TCPDuration: *wanDuration},
		Transfers: wanTransfers(bin),
		Progress:  func(msg string) { fmt.Fprintln(os.Stderr, msg) },
	})
	bench.WriteWANMarkdown(w, results, err)
	return err
}

// wanTransfers are the transfers run on each verified profile; the
// alknet transfers of issue 17 §2-§6 join the baseline here.
func wanTransfers(bin string) []bench.WANTransfer {
	ts := append([]bench.WANTransfer{bench.DirectTCPTransfer(*wanDuration)},
		bench.DirectionSwitchTransfers(*wanSwitchBytes)...)
	ts = append(ts, bench.AlknetPerfTransfers(bin, *wanSwitchBytes)...)
	ts = append(ts, bench.PathChoiceTransfers(bin, *wanPathChoiceBytes)...)
	if *wanKnobRounds > 0 {
		ts = append(ts, bench.QUICKnobTransfers(*wanKnobBytes, *wanKnobRounds)...)
	}
	return ts
}
