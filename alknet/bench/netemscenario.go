package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// A WANTransfer is one measured piece of work over an emulated link: the
// wan scenario runs each on every profile that verified. Run moves data
// between the link's namespaces (it picks the direction) and returns the
// goodput in bytes per second, or with Latency a latency in seconds.
type WANTransfer struct {
	Name string
	Run  func(ctx context.Context, l *Link) (bytesPerSec float64, err error)
	// Latency says that Run returns seconds, not bytes per second.
	Latency bool
	// Work, if set, describes the work done on a profile (the size moved,
	// which may depend on the profile) for the report.
	Work func(LinkProfile) string
}

// DirectTCPTransfer is the baseline: one Go TCP connection from A to B for
// d, with the profile's loss, measured as [Link.MeasureTCP] does.
func DirectTCPTransfer(d time.Duration) WANTransfer {
	return WANTransfer{Name: "direct-tcp", Run: func(ctx context.Context, l *Link) (float64, error) {
		bps, err := l.MeasureTCP(ctx, SideA, d)
		return bps / 8, err
	}}
}

// WANConfig configures [RunWAN].
type WANConfig struct {
	// Profiles are the paths to emulate; nil means LinkProfiles().
	Profiles []LinkProfile
	// Verify tunes each link's self-check.
	Verify VerifyOptions
	// Transfers run on each verified link, in order; nil means
	// DirectTCPTransfer(4s).
	Transfers []WANTransfer
	// Progress, if set, is told what is happening.
	Progress func(msg string)
}

// WANResult is one profile's outcome.
type WANResult struct {
	Profile LinkProfile
	// Verify is the self-check; Err a failure to set up or measure (the
	// profile then has no numbers).
	Verify VerifyResult
	Err    error
	// Transfers are the transfers' results, empty if the profile was
	// skipped.
	Transfers []WANTransferResult
	// Stats are the emulator's counters when the link closed.
	Stats LinkStats
	// CongestionControl is the TCP congestion control of the namespaces
	// (inherited from the host), which direct TCP uses.
	CongestionControl string
}

// WANTransferResult is one transfer on one profile.
type WANTransferResult struct {
	Name string
	// BytesPerSec is Run's result: seconds when Latency is set.
	BytesPerSec float64
	Latency     bool
	Work        string
	Err         error
}

// Skipped says why the profile's transfers did not run ("" if they did).
func (r WANResult) Skipped() string {
	switch {
	case r.Err != nil:
		return r.Err.Error()
	case !r.Verify.OK():
		return r.Verify.Err().Error()
	}
	return ""
}

// RunWAN starts a link for each profile in turn, verifies it, and runs
// the transfers on those that verified. The error joins the set-up
// failures; a profile that missed its self-check is reported in its
// result, not as an error.
func RunWAN(ctx context.Context, cfg WANConfig) ([]WANResult, error) {
	if cfg.Profiles == nil {
		cfg.Profiles = LinkProfiles()
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
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("wan %s: %w", p.Name, r.Err))
		}
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	return results, errors.Join(errs...)
}

func runWANProfile(ctx context.Context, cfg WANConfig, p LinkProfile, progress func(string, ...any)) (r WANResult) {
	r.Profile = p
	progress("wan %s: starting the link (%v)", p.Name, p)
	l, err := StartLink(ctx, p)
	if err != nil {
		r.Err = err
		return r
	}
	defer func() {
		r.Stats = l.Stats()
		if err := l.Close(); err != nil && r.Err == nil {
			r.Err = err
		}
	}()
	r.Profile = l.Profile()
	r.CongestionControl = l.CongestionControl()
	r.Verify, r.Err = l.Verify(ctx, cfg.Verify)
	if r.Err != nil {
		return r
	}
	v := r.Verify
	progress("wan %s: RTT %v, direct TCP %.1f Mbit/s (%.2f of the rate), loss %.2f%%: %s",
		p.Name, v.RTT.Round(10*time.Microsecond), v.TCPBps/1e6, v.RateRatio(), 100*v.Loss, verdict(v))
	if !v.OK() {
		return r
	}
	for _, t := range cfg.Transfers {
		bps, err := t.Run(ctx, l)
		tr := WANTransferResult{Name: t.Name, BytesPerSec: bps, Latency: t.Latency, Err: err}
		if t.Work != nil {
			tr.Work = t.Work(r.Profile)
		}
		r.Transfers = append(r.Transfers, tr)
		progress("wan %s: %s %s %v", p.Name, t.Name, tr.value(), errOrEmpty(err))
		if ctx.Err() != nil {
			break
		}
	}
	return r
}

// value is the result with its unit: Mbit/s, or ms for a latency.
func (t WANTransferResult) value() string {
	if t.Latency {
		return fmt.Sprintf("%.1f ms", t.BytesPerSec*1e3)
	}
	return fmt.Sprintf("%.1f Mbit/s", t.BytesPerSec*8/1e6)
}

func verdict(v VerifyResult) string {
	if v.OK() {
		return "verified"
	}
	return "skipped: " + joinProblems(v.Problems)
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
		VerifyRTTTolerance, 100*VerifyRateFraction)
	fmt.Fprintf(w, "| profile | RTT set | RTT measured | rate Mbit/s | direct TCP, no loss | of rate | loss set | loss measured | queue | TCP CC | verdict |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, r := range results {
		p, v := r.Profile, r.Verify
		verd := verdict(v)
		if r.Err != nil {
			verd = "failed: " + r.Err.Error()
		}
		fmt.Fprintf(w, "| %s | %v | %v | %g | %.1f | %.3f | %.2f%% | %s | %d KiB | %s | %s |\n",
			p.Name, p.RTT, v.RTT.Round(10*time.Microsecond), float64(p.RateBps)/1e6, v.TCPBps/1e6, v.RateRatio(),
			100*p.MeanLoss(), measuredLoss(v), p.QueueBytes>>10, r.CongestionControl, verd)
	}
	fmt.Fprintf(w, "\nTransfers over each verified profile (Mbit/s of payload, or a latency in ms; *of rate* is the fraction of the profile's rate):\n\n")
	fmt.Fprintf(w, "| profile | transfer | work | result | of rate |\n|---|---|---|---:|---:|\n")
	for _, r := range results {
		if s := r.Skipped(); s != "" {
			fmt.Fprintf(w, "| %s | – | – | skipped: %s | – |\n", r.Profile.Name, s)
			continue
		}
		for _, t := range r.Transfers {
			work := t.Work
			if work == "" {
				work = "–"
			}
			if t.Err != nil {
				fmt.Fprintf(w, "| %s | %s | %s | failed: %s | – |\n", r.Profile.Name, t.Name, work, oneLine(t.Err))
				continue
			}
			ofRate := "–"
			if !t.Latency {
				ofRate = fmt.Sprintf("%.3f", t.BytesPerSec*8/float64(max(r.Profile.RateBps, 1)))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.Profile.Name, t.Name, work, t.value(), ofRate)
		}
	}
	fmt.Fprintf(w, "\nEmulator counters, A to B / B to A (packets):\n\n")
	fmt.Fprintf(w, "| profile | passed | random loss | burst loss | queue drops | no buffer | mean late | max late |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		a, b := r.Stats.AToB, r.Stats.BToA
		fmt.Fprintf(w, "| %s | %d / %d | %d / %d | %d / %d | %d / %d | %d / %d | %v / %v | %v / %v |\n", r.Profile.Name,
			a.Passed, b.Passed, a.Lost, b.Lost, a.BurstLost, b.BurstLost, a.Queue, b.Queue, a.Overflow, b.Overflow,
			a.MeanLate().Round(time.Microsecond), b.MeanLate().Round(time.Microsecond),
			a.LateMax.Round(time.Microsecond), b.LateMax.Round(time.Microsecond))
	}
	fmt.Fprintln(w)
	report := writeReportGoals(w, results)
	for _, r := range results {
		writeGoal(w, "emulator-tcp", r.Profile.Name, r.Verify.RateRatio(), ">=", VerifyRateFraction)
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

func measuredLoss(v VerifyResult) string {
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
		if f.Name != lo.Name || f.Latency != lo.Latency {
			return nil, fmt.Errorf("bench: ByLoss: %s paired with %s", f.Name, lo.Name)
		}
		t := f
		t.Run = func(ctx context.Context, l *Link) (float64, error) {
			if l.Profile().MeanLoss() > 0 {
				return lo.Run(ctx, l)
			}
			return f.Run(ctx, l)
		}
		if t.Work == nil {
			t.Work = func(p LinkProfile) string {
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
