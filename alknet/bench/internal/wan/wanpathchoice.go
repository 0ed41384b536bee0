package wan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// The path-aware transport choice (issue 17 §2; docs/protocols/core.md,
// "Transport choice") across an emulated link: two `alknet perf` runs
// from A with the network auto and one data dir. The first starts on QUIC;
// where QUIC is bound by loss the client remembers TCP+TLS for the node
// and runs again on it. The second is a later command to the same node,
// which dials whatever the first remembered.

// pathChoiceResult is one pair of runs on one link.
type pathChoiceResult struct {
	// quic is the first run's goodput on QUIC, bytes per second: the
	// loss-bound window's when it switched, else its download's.
	quic float64
	// switched says the first run found QUIC bound by loss.
	switched bool
	// next is the second run's download, bytes per second, over Transport
	// ("quic" or "tcp+tls").
	next      float64
	transport string
}

// pathChoiceLossy is the mean loss from which a profile counts as lossy
// for transport choice: above the 2 % that quic-go's patched NewReno
// tolerates (third_party/quic-go/ALKNET-PATCHES.md, patch 3) QUIC is bound
// by loss, so there the second run must use TCP+TLS and beat QUIC by
// pathChoiceGoalLossy; on the others (1 % loss included) it must stay on
// QUIC (pathChoiceGoalClean).
const (
	pathChoiceLossy     = 0.03
	pathChoiceGoalLossy = 5
	pathChoiceGoalClean = 0.8
)

// Names of the path-choice transfers.
const (
	transferPathChoiceQUIC = "path-choice-first-quic"
	transferPathChoiceNext = "path-choice-next"
)

var (
	verdictGoodput = regexp.MustCompile(`quic: bound by loss after .*goodput ([0-9.]+) Mbit/s`)
	perfTransport  = regexp.MustCompile(`(?m)^(quic|tcp\+tls), \d+ stream`)
)

// PathChoiceTransfers are the two runs as wan-scenario transfers (one
// measurement per link): the first run's QUIC goodput and the second
// run's download. The second fails on a lossy profile if it did not use
// TCP+TLS, and on a clean one if it did not stay on QUIC.
func PathChoiceTransfers(bin string, bytes int64) []WANTransfer {
	measure := oncePerLink(func(ctx context.Context, l *netem.Link) (pathChoiceResult, error) {
		return measurePathChoice(ctx, l, bin, bytes)
	})
	return []WANTransfer{
		{name: transferPathChoiceQUIC, run: func(ctx context.Context, l *netem.Link) (float64, error) {
			r, err := measure(ctx, l)
			return r.quic, err
		}},
		{name: transferPathChoiceNext, run: func(ctx context.Context, l *netem.Link) (float64, error) {
			r, err := measure(ctx, l)
			if err != nil {
				return 0, err
			}
			if want := pathChoiceWant(l.Profile()); r.transport != want {
				return r.next, fmt.Errorf("bench: second run used %s, want %s on %s", r.transport, want, l.Profile().Name)
			}
			return r.next, nil
		}},
	}
}

// pathChoiceWant is the transport the second run should use on p.
func pathChoiceWant(p netem.LinkProfile) string {
	if p.MeanLoss() >= pathChoiceLossy {
		return "tcp+tls"
	}
	return "quic"
}

// raceLostLog is what the client logs when TCP+TLS won its dial's race:
// QUIC's handshake had not completed within its head start.
const raceLostLog = "quic did not connect in time"

// errFirstOnTCP is measurePathChoice's first run dialled over TCP+TLS
// because QUIC's handshake lost a flight or two and with them the dial's
// race, as it can at heavy loss: a draw, with nothing to judge on QUIC.
var errFirstOnTCP = errors.New("bench: the first alknet perf went to TCP+TLS: QUIC's handshake lost the dial's race")

// measurePathChoice starts a node in B whose one peer (the client's key)
// may use perf and runs `alknet perf --bytes bytes` twice from A with the
// network auto and one client data dir.
func measurePathChoice(ctx context.Context, l *netem.Link, bin string, bytes int64) (pathChoiceResult, error) {
	var res pathChoiceResult
	dir, err := os.MkdirTemp("", "alknet-bench-pathchoice-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	n, err := startWANNode(ctx, l, bin, dir, []string{"perf"}, nil)
	if err != nil {
		return res, err
	}
	defer n.stop()
	perf := func() (string, perfResult, error) {
		return n.perf(ctx, l, bin, "", bytes, 3*time.Minute)
	}
	first, r1, err := perf()
	if err != nil {
		return res, err
	}
	if v := verdictGoodput.FindStringSubmatch(first); v != nil {
		res.switched = true
		g, _ := strconv.ParseFloat(v[1], 64)
		res.quic = g * 1e6 / 8
	} else if t := perfTransport.FindStringSubmatch(first); t == nil || t[1] != "quic" {
		if strings.Contains(first, raceLostLog) {
			return res, errFirstOnTCP
		}
		return res, fmt.Errorf("bench: first alknet perf did not start on QUIC: %q", first)
	} else {
		res.quic = r1.down
	}
	second, r2, err := perf()
	if err != nil {
		return res, err
	}
	t := perfTransport.FindStringSubmatch(second)
	if t == nil {
		return res, fmt.Errorf("bench: second alknet perf printed %q", second)
	}
	res.next, res.transport = r2.down, t[1]
	return res, nil
}

// writePathChoiceGoals prints, per profile with both transfers, `goal
// path-choice <profile> ratio <next / first QUIC> target >=5` on a lossy
// profile (TCP+TLS after the switch) and `>=0.8` on a clean one (QUIC
// kept).
func writePathChoiceGoals(w io.Writer, results []WANResult) {
	for _, r := range results {
		rates := map[string]float64{}
		for _, t := range r.transfers {
			if t.err == nil {
				rates[t.name] = t.bytesPerSec
			}
		}
		first, ok1 := rates[transferPathChoiceQUIC]
		next, ok2 := rates[transferPathChoiceNext]
		if !ok1 || !ok2 || first <= 0 {
			continue
		}
		target := float64(pathChoiceGoalClean)
		if pathChoiceWant(r.profile) == "tcp+tls" {
			target = pathChoiceGoalLossy
		}
		harness.WriteGoal(w, "path-choice", r.profile.Name, next/first, ">=", target)
	}
}
