package sshbench

import (
	"fmt"
	"io"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// sshRatio is one ratio the SSH report prints: a / b, each less base when
// base is set.
type sshRatio struct {
	test       SSHTest
	a, b, base string
	goal       string
}

// sshRatios are the ratios of the SSH report, by test.
func sshRatios() []sshRatio {
	aes, chacha := withCipher(variantOpenSSH, AES128GCM), withCipher(variantOpenSSH, chaCha20Poly1305)
	var rs []sshRatio
	for _, t := range []SSHTest{SFTPGet, sftpPut} {
		rs = append(rs, sshRatio{t, variantAlknet, aes, "", "≥ 0.8"}, sshRatio{t, variantAlknet, chacha, "", "≥ 0.8"},
			sshRatio{t, variantAlknetTCP, aes, "", ""})
	}
	return append(rs,
		sshRatio{tunnel, variantAlknet, variantBareQUIC, "", "≥ 0.9"},
		sshRatio{tunnel, variantAlknet, aes, "", "≥ 0.5"},
		sshRatio{tunnel, variantAlknet, chacha, "", "≥ 1.0"},
		sshRatio{tunnel, variantAlknetTCP, aes, "", "≥ 1.0"},
		sshRatio{tunnel, variantAlknetSSH, aes, "", ""},
		sshRatio{tunnel, variantAlknet, variantAlknetSSH, "", ""},
		sshRatio{tunnel, withCipher(variantPipe, AES128GCM), aes, "", "≥ 0.7"},
		sshRatio{tunnel, withCipher(variantPipe, chaCha20Poly1305), chacha, "", "≥ 0.7"},
		sshRatio{socks, variantAlknet, aes, variantDirect, "≤ 1.2"},
		sshRatio{socks, variantAlknet, chacha, variantDirect, "≤ 1.2"},
		sshRatio{socks, variantAlknetTCP, aes, variantDirect, ""},
		sshRatio{setup, variantPipe, variantOpenSSH, "", ""},
		sshRatio{setup, variantAlknet, variantOpenSSH, "", ""},
		sshRatio{setup, variantPipe, variantAlknetStart, "", ""},
	)
}

// sshUnits are how each test's values print.
var sshUnits = map[SSHTest]struct {
	heading, unit string
	format        func(float64) string
}{
	tunnel:  {"Tunnel throughput: iperf3 through `-L`", "Mbit/s received", func(v float64) string { return fmt.Sprintf("%.0f", v) }},
	socks:   {"SOCKS5: small HTTP GET on a new connection", "GET latency, median of the round", seconds},
	SFTPGet: {"SFTP get", "MB/s", func(v float64) string { return fmt.Sprintf("%.1f", v) }},
	sftpPut: {"SFTP put", "MB/s", func(v float64) string { return fmt.Sprintf("%.1f", v) }},
	setup:   {"Session set-up: `ssh HOST true`", "run time, median of the round", seconds},
}

func seconds(v float64) string {
	d := time.Duration(v * float64(time.Second))
	if d >= 10*time.Millisecond {
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

// WriteMarkdown prints the report as Markdown: the set-up, then per test
// each variant's median (min–max) over the rounds and the ratios with
// their goals, as the median (min–max) of the per-round ratios and the
// ratio of the medians. err, if set, is printed as the run's failure.
func (r *SSHReport) WriteMarkdown(w io.Writer, err error) {
	cfg := r.config
	fmt.Fprintf(w, "## SSH, SOCKS5 and SFTP against OpenSSH\n\n")
	fmt.Fprintf(w, "OpenSSH `sshd` and an `alknet serve` node on 127.0.0.1, each with fresh keys, both knowing one client key "+
		"(the node also knows the client's NodeID); sshd offers %s and %s, and each OpenSSH variant pins one with `-c`. "+
		"%s; iperf3: %s; sshd's SFTP: %s. %d interleaved rounds, the variants' order rotating each round; "+
		"iperf3 runs %s; %d GETs per variant and round; a %s file; %d sessions per variant and round.\n\n",
		AES128GCM, chaCha20Poly1305, r.openSSH, r.iperf, r.sftpServer, cfg.Runs, iperfLength(cfg), cfg.requests,
		formatSize(cfg.SFTPBytes), cfg.sessions)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %s\n\n", harness.LastLines(err.Error(), 30))
	}
	for _, t := range cfg.Tests {
		vs := r.variants[t]
		if len(vs) == 0 {
			continue
		}
		u := sshUnits[t]
		fmt.Fprintf(w, "### %s\n\n| variant | %s: median (min–max) |", u.heading, u.unit)
		if t == socks {
			fmt.Fprintf(w, " added to direct |")
		}
		fmt.Fprintf(w, "\n|---|---:|")
		if t == socks {
			fmt.Fprintf(w, "---:|")
		}
		fmt.Fprintln(w)
		direct := r.stats(socks, variantDirect)
		for _, v := range vs {
			s := r.stats(t, v)
			if s.N == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s | %s (%s–%s) |", v, u.format(s.Median), u.format(s.Min), u.format(s.Max))
			if t == socks {
				fmt.Fprintf(w, " %s |", u.format(s.Median-direct.Median))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "\n| ratio | goal | per round: median (min–max) | of the medians |\n|---|---|---:|---:|\n")
		for _, q := range sshRatios() {
			if q.test != t {
				continue
			}
			p := r.pairedRatio(t, q.a, q.b, q.base)
			if p.N == 0 {
				continue
			}
			name := q.a + " / " + q.b
			if q.base != "" {
				name = "(" + q.a + " − " + q.base + ") / (" + q.b + " − " + q.base + ")"
			}
			if t == socks || t == setup {
				name += " (time)"
			}
			a, b, base := r.stats(t, q.a), r.stats(t, q.b), r.stats(t, q.base)
			fmt.Fprintf(w, "| %s | %s | %.2f (%.2f–%.2f) | %.2f |\n", name, q.goal, p.Median, p.Min, p.Max,
				(a.Median-base.Median)/(b.Median-base.Median))
		}
		fmt.Fprintln(w)
	}
	r.writeGoals(w)
}

// tunnelGoals are issue 17's goals for alknet/fwd on loopback, as goal
// lines: name, numerator, denominator, target.
var tunnelGoals = []struct {
	name, a, b string
	target     float64
}{
	{"fwd-vs-bare-quic", variantAlknet, variantBareQUIC, 0.9},
	{"fwd-vs-openssh", variantAlknet, withCipher(variantOpenSSH, AES128GCM), 0.5},
	{"fwd-tcp-vs-openssh", variantAlknetTCP, withCipher(variantOpenSSH, AES128GCM), 1.0},
}

// writeGoals prints a goal line per tunnel goal measured: the median of
// the per-round ratios, profile "loopback".
func (r *SSHReport) writeGoals(w io.Writer) {
	for _, g := range tunnelGoals {
		if p := r.pairedRatio(tunnel, g.a, g.b, ""); p.N > 0 {
			harness.WriteGoal(w, g.name, "loopback", p.Median, ">=", g.target)
		}
	}
}

// formatSize prints a byte count in whole KiB, MiB or GiB where it can.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d %s", n/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// iperfLength says how long each iperf3 run is.
func iperfLength(cfg SSHConfig) string {
	if cfg.iperfBytes > 0 {
		return "until " + formatSize(cfg.iperfBytes) + " are sent"
	}
	return cfg.IperfTime.String()
}
