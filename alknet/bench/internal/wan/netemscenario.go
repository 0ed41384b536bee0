package wan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// A WANTransfer is one measured piece of work over an emulated link: the
// wan scenario runs each on every profile that verified. Run moves data
// between the link's namespaces (it picks the direction) and returns the
// goodput in bytes per second, or with Latency a latency in seconds.
type WANTransfer struct {
	name string
	run  func(ctx context.Context, l *netem.Link) (bytesPerSec float64, err error)
	// latency says that Run returns seconds, not bytes per second.
	latency bool
	// work, if set, describes the work done on a profile (the size moved,
	// which may depend on the profile) for the report.
	work func(netem.LinkProfile) string
}

// DirectTCPTransfer is the baseline: one Go TCP connection from A to B for
// d, with the profile's loss, measured as [netem.Link.MeasureTCP] does.
func DirectTCPTransfer(d time.Duration) WANTransfer {
	return WANTransfer{name: "direct-tcp", run: func(ctx context.Context, l *netem.Link) (float64, error) {
		bps, err := l.MeasureTCP(ctx, netem.SideA, d)
		return bps / 8, err
	}}
}

// WANConfig configures [RunWAN].
type WANConfig struct {
	// Profiles are the paths to emulate; nil means LinkProfiles().
	Profiles []netem.LinkProfile
	// Verify tunes each link's self-check.
	Verify netem.VerifyOptions
	// Transfers run on each verified link, in order; nil means
	// DirectTCPTransfer(4s).
	Transfers []WANTransfer
	// Progress, if set, is told what is happening.
	Progress func(msg string)
}

// WANResult is one profile's outcome.
type WANResult struct {
	profile netem.LinkProfile
	// verify is the self-check; Err a failure to set up or measure (the
	// profile then has no numbers).
	verify netem.VerifyResult
	err    error
	// transfers are the transfers' results, empty if the profile was
	// skipped.
	transfers []wanTransferResult
	// stats are the emulator's counters when the link closed.
	stats netem.LinkStats
	// congestionControl is the TCP congestion control of the namespaces
	// (inherited from the host), which direct TCP uses.
	congestionControl string
}

// wanTransferResult is one transfer on one profile.
type wanTransferResult struct {
	name string
	// bytesPerSec is Run's result: seconds when Latency is set.
	bytesPerSec float64
	latency     bool
	work        string
	err         error
}

// skipped says why the profile's transfers did not run ("" if they did).
func (r WANResult) skipped() string {
	switch {
	case r.err != nil:
		return r.err.Error()
	case !r.verify.OK():
		return r.verify.Err().Error()
	}
	return ""
}

// RunWAN starts a link for each profile in turn, verifies it, and runs
// the transfers on those that verified. The error joins the set-up
// failures; a profile that missed its self-check is reported in its
// result, not as an error.
func RunWAN(ctx context.Context, cfg WANConfig) ([]WANResult, error) {
	if cfg.Profiles == nil {
		cfg.Profiles = netem.LinkProfiles()
	}
	if cfg.Transfers == nil {
		cfg.Transfers = []WANTransfer{DirectTCPTransfer(4 * time.Second)}
	}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			cfg.Progress(fmt.Sprintf(format, args...))
		}
	}
	var results []WANResult
	var errs []error
	for _, p := range cfg.Profiles {
		r := runWANProfile(ctx, cfg, p, progress)
		if r.err != nil {
			errs = append(errs, fmt.Errorf("wan %s: %w", p.Name, r.err))
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	return results, errors.Join(errs...)
}

func runWANProfile(ctx context.Context, cfg WANConfig, p netem.LinkProfile, progress func(string, ...any)) (r WANResult) {
	r.profile = p
	progress("wan %s: starting the link (%v)", p.Name, p)
	l, err := netem.StartLink(ctx, p)
	if err != nil {
		r.err = err
		return r
	}
	defer func() {
		r.stats = l.Stats()
		if err := l.Close(); err != nil && r.err == nil {
			r.err = err
		}
	}()
	r.profile = l.Profile()
	r.congestionControl = l.CongestionControl()
	r.verify, r.err = l.Verify(ctx, cfg.Verify)
	if r.err != nil {
		return r
	}
	v := r.verify
	progress("wan %s: RTT %v, direct TCP %.1f Mbit/s (%.2f of the rate), loss %.2f%%: %s",
		p.Name, v.RTT.Round(10*time.Microsecond), v.TCPBps/1e6, v.RateRatio(), 100*v.Loss, verdict(v))
	if !v.OK() {
		return r
	}
	for _, t := range cfg.Transfers {
		bps, err := t.run(ctx, l)
		tr := wanTransferResult{name: t.name, bytesPerSec: bps, latency: t.latency, err: err}
		if t.work != nil {
			tr.work = t.work(r.profile)
		}
		r.transfers = append(r.transfers, tr)
		progress("wan %s: %s %s %v", p.Name, t.name, tr.value(), errOrEmpty(err))
		if ctx.Err() != nil {
			break
		}
	}
	return r
}

// value is the result with its unit: Mbit/s, or ms for a latency.
func (t wanTransferResult) value() string {
	if t.latency {
		return fmt.Sprintf("%.1f ms", t.bytesPerSec*1e3)
	}
	return fmt.Sprintf("%.1f Mbit/s", t.bytesPerSec*8/1e6)
}

func verdict(v netem.VerifyResult) string {
	if v.OK() {
		return "verified"
	}
	return "skipped: " + netem.JoinProblems(v.Problems)
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// WriteWANMarkdown prints the profile table (setting against measured),
// the transfers of each verified profile, and last one goal line per
// profile: `goal emulator-tcp <profile> ratio <direct TCP / rate> target
// >=0.85 met|missed`.
func WriteWANMarkdown(w io.Writer, results []WANResult, err error) {
	fmt.Fprintf(w, "## Real paths: the link emulator\n\n")
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "Two network namespaces joined by a user-space TUN forwarder (bench.StartLink); "+
		"each profile must prove itself before it counts: median RTT of pings within %v of the setting, "+
		"one TCP connection (loss suspended) at >= %.0f%% of the rate. Loss is measured with small datagrams from A to B.\n\n",
		netem.VerifyRTTTolerance, 100*netem.VerifyRateFraction)
	fmt.Fprintf(w, "| profile | RTT set | RTT measured | rate Mbit/s | direct TCP, no loss | of rate | loss set | loss measured | queue | TCP CC | verdict |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range results {
		p, v := r.profile, r.verify
		verd := verdict(v)
		if r.err != nil {
			verd = "failed: " + r.err.Error()
		}
		fmt.Fprintf(w, "| %s | %v | %v | %g | %.1f | %.3f | %.2f%% | %s | %d KiB | %s | %s |\n",
			p.Name, p.RTT, v.RTT.Round(10*time.Microsecond), float64(p.RateBps)/1e6, v.TCPBps/1e6, v.RateRatio(),
			100*p.MeanLoss(), measuredLoss(v), p.QueueBytes>>10, r.congestionControl, verd)
	}
	fmt.Fprintf(w, "\nTransfers over each verified profile (Mbit/s of payload, or a latency in ms; *of rate* is the fraction of the profile's rate):\n\n")
	fmt.Fprintf(w, "| profile | transfer | work | result | of rate |\n|---|---|---|---:|---:|\n")
	for _, r := range results {
		if s := r.skipped(); s != "" {
			fmt.Fprintf(w, "| %s | – | – | skipped: %s | – |\n", r.profile.Name, s)
			continue
		}
		for _, t := range r.transfers {
			work := t.work
			if work == "" {
				work = "–"
			}
			if t.err != nil {
				fmt.Fprintf(w, "| %s | %s | %s | failed: %s | – |\n", r.profile.Name, t.name, work, oneLine(t.err))
				continue
			}
			ofRate := "–"
			if !t.latency {
				ofRate = fmt.Sprintf("%.3f", t.bytesPerSec*8/float64(max(r.profile.RateBps, 1)))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.profile.Name, t.name, work, t.value(), ofRate)
		}
	}
	fmt.Fprintf(w, "\nEmulator counters, A to B / B to A (packets):\n\n")
	fmt.Fprintf(w, "| profile | passed | random loss | burst loss | queue drops | no buffer | sender's TUN queue full | receiver's UDP buffer full | mean late | max late |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		a, b := r.stats.AToB, r.stats.BToA
		rcvbuf := r.stats.UDPRcvbufErrors
		txdrop := r.stats.TxDropped
		fmt.Fprintf(w, "| %s | %d / %d | %d / %d | %d / %d | %d / %d | %d / %d | %d / %d | %d / %d | %v / %v | %v / %v |\n", r.profile.Name,
			a.Passed, b.Passed, a.Lost, b.Lost, a.BurstLost, b.BurstLost, a.Queue, b.Queue, a.Overflow, b.Overflow,
			txdrop[netem.SideA], txdrop[netem.SideB], rcvbuf[netem.SideB], rcvbuf[netem.SideA],
			a.MeanLate().Round(time.Microsecond), b.MeanLate().Round(time.Microsecond),
			a.LateMax.Round(time.Microsecond), b.LateMax.Round(time.Microsecond))
	}
	fmt.Fprintln(w)
	report := writeReportGoals(w, results)
	for _, r := range results {
		harness.WriteGoal(w, "emulator-tcp", r.profile.Name, r.verify.RateRatio(), ">=", netem.VerifyRateFraction)
	}
	writeDirectionSwitchGoals(w, results)
	writePathChoiceGoals(w, results)
	for _, line := range report {
		fmt.Fprint(w, line)
	}
	fmt.Fprintln(w)
}

// oneLine is err's message on one line (a child's output follows its
// first line), for a table cell.
func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", " ⏎ ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

func measuredLoss(v netem.VerifyResult) string {
	if v.LossSent == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f%% of %d", 100*v.Loss, v.LossSent)
}

// ByLoss pairs the transfers of full and lossy, which must do the same
// work in the same order at two sizes: each runs full's on a path without
// loss and lossy's on one with random or bursty loss (where QUIC's NewReno
// moves ~3 Mbit/s and a size fit for a clean path takes minutes). Work,
// if unset, says which size ran.
func ByLoss(full, lossy []WANTransfer, fullWork, lossyWork string) ([]WANTransfer, error) {
	if len(full) != len(lossy) {
		return nil, fmt.Errorf("bench: ByLoss: %d transfers against %d", len(full), len(lossy))
	}
	ts := make([]WANTransfer, len(full))
	for i, f := range full {
		lo := lossy[i]
		if f.name != lo.name || f.latency != lo.latency {
			return nil, fmt.Errorf("bench: ByLoss: %s paired with %s", f.name, lo.name)
		}
		t := f
		t.run = func(ctx context.Context, l *netem.Link) (float64, error) {
			if l.Profile().MeanLoss() > 0 {
				return lo.run(ctx, l)
			}
			return f.run(ctx, l)
		}
		if t.work == nil {
			t.work = func(p netem.LinkProfile) string {
				if p.MeanLoss() > 0 {
					return lossyWork
				}
				return fullWork
			}
		}
		ts[i] = t
	}
	return ts, nil
}
