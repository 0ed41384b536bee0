package wan

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// pathHandshakeCase is one command of the handshake benchmark: a fresh run
// (no session ticket in the client's data dir) or a resumed one (a ticket
// from the previous run).
type pathHandshakeCase struct {
	name    string // "call quic fresh", ...
	median  time.Duration
	min     time.Duration
	max     time.Duration
	err     error
	runs    int
	resumed bool
}

// PathHandshakes is the handshake benchmark on one link profile.
type PathHandshakes struct {
	profile netem.LinkProfile
	err     error
	verify  netem.VerifyResult
	// start is the median run time of `ip netns exec <A> true`: the
	// process start-up every case pays.
	start time.Duration
	cases []pathHandshakeCase
}

// RunHandshakes measures, on each profile, the run time of short client
// commands across the emulated path: `alknet call sys/info` over QUIC,
// TCP+TLS and with no network set (auto), fresh and resumed, `alknet ssh HOST true` over QUIC, and
// OpenSSH's `ssh HOST true` when sshd and ssh are installed. The node
// (and sshd) run in namespace B, the clients in A. runs is the number of
// runs of each case (median reported).
func RunHandshakes(ctx context.Context, bin string, profiles []netem.LinkProfile, runs int) ([]PathHandshakes, error) {
	var out []PathHandshakes
	var errs []error
	for _, p := range profiles {
		r := PathHandshakes{profile: p}
		r.err = func() error {
			l, err := netem.StartLink(ctx, p)
			if err != nil {
				return err
			}
			defer l.Close()
			if r.verify, err = l.Verify(ctx, netem.VerifyOptions{TCPDuration: 2 * time.Second}); err != nil {
				return err
			}
			if !r.verify.OK() {
				return r.verify.Err()
			}
			return runHandshakeCases(ctx, l, bin, runs, &r)
		}()
		if r.err != nil {
			errs = append(errs, fmt.Errorf("handshakes %s: %w", p.Name, r.err))
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func runHandshakeCases(ctx context.Context, l *netem.Link, bin string, runs int, r *PathHandshakes) error {
	dir, err := os.MkdirTemp("", "alknet-bench-handshake-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	n, err := startWANNode(ctx, l, bin, dir, []string{"ssh:connect", "ssh:shell"}, nil, "[ssh]", "exec = true")
	if err != nil {
		return err
	}
	defer n.stop()
	client, addr := n.client, n.addr
	sessions := filepath.Join(client, "tls_sessions")

	r.start, _, err = timeNSRuns(ctx, runs, nil, l.Namespace(netem.SideA), "true")
	if err != nil {
		return err
	}
	type variant struct {
		name    string
		resumed bool
		args    []string
	}
	var vs []variant
	for _, network := range []string{"quic", "tcp", "auto"} {
		args := []string{bin, "call", "--data-dir", client, "--network", network, addr, "sys/info"}
		if network == "auto" { // the default: no flag
			args = slices.Delete(args, 4, 6)
		}
		for _, resumed := range []bool{false, true} {
			vs = append(vs, variant{"call " + network, resumed, args})
		}
	}
	for _, resumed := range []bool{false, true} {
		vs = append(vs, variant{"alknet ssh quic", resumed,
			[]string{bin, "ssh", "--data-dir", client, "--network", "quic", addr, "true"}})
	}
	for _, v := range vs {
		prep := func() error { return os.Remove(sessions) }
		if v.resumed {
			prep = func() error {
				_, err := harness.RunChild(ctx, time.Minute, "", "ip", append([]string{"netns", "exec", l.Namespace(netem.SideA)}, v.args...)...)
				return err
			}
		}
		c := pathHandshakeCase{name: v.name, resumed: v.resumed, runs: runs}
		var ds []time.Duration
		c.median, ds, c.err = timeNSRuns(ctx, runs, prep, l.Namespace(netem.SideA), v.args...)
		if len(ds) > 0 {
			c.min, c.max = ds[0], ds[len(ds)-1]
		}
		r.cases = append(r.cases, c)
	}
	if c, ok := openSSHCase(ctx, l, dir, runs); ok {
		r.cases = append(r.cases, c)
	}
	return nil
}

// timeNSRuns runs args in namespace ns runs times, prep (if set, its "no
// such file" ignored) before each, and returns the median and the sorted
// run times.
func timeNSRuns(ctx context.Context, runs int, prep func() error, ns string, args ...string) (time.Duration, []time.Duration, error) {
	var ds []time.Duration
	for range runs {
		if prep != nil {
			if err := prep(); err != nil && !errors.Is(err, os.ErrNotExist) {
				return 0, nil, err
			}
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		cmd := exec.CommandContext(cctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
		cmd.Env = harness.ChildEnv()
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = io.Discard, &out
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		cancel()
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, harness.LastLines(out.String(), harness.TailLines))
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds, nil
}

// OpenSSHCase times a stock `ssh HOST true` against an sshd in B, when
// both are installed.
func openSSHCase(ctx context.Context, l *netem.Link, dir string, runs int) (pathHandshakeCase, bool) {
	c := pathHandshakeCase{name: "openssh ssh", runs: runs}
	sshd, err := harness.LookTool("sshd")
	if err != nil {
		return c, false
	}
	if _, err := harness.LookTool("ssh"); err != nil {
		return c, false
	}
	c.err = func() error {
		key, hostKey := filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "host_ed25519")
		for _, k := range []string{key, hostKey} {
			if _, err := harness.RunChild(ctx, 10*time.Second, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k); err != nil {
				return err
			}
		}
		pub, err := os.ReadFile(key + ".pub")
		if err != nil {
			return err
		}
		authorized := filepath.Join(dir, "authorized_keys")
		if err := os.WriteFile(authorized, pub, 0o600); err != nil {
			return err
		}
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return err
		}
		addr := l.Addr(netem.SideB).String()
		cfg := filepath.Join(dir, "sshd_config")
		conf := strings.Join([]string{"ListenAddress " + addr + ":2222", "HostKey " + hostKey, "PidFile none", "UsePAM no",
			"AuthorizedKeysFile " + authorized, "StrictModes no", "PasswordAuthentication no",
			"KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UseDNS no", "PrintMotd no", "PrintLastLog no"}, "\n") + "\n"
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return err
		}
		d, _, err := harness.StartChild(ctx, regexp.MustCompile(`Server listening on `+regexp.QuoteMeta(addr)),
			"ip", "netns", "exec", l.Namespace(netem.SideB), sshd, "-D", "-e", "-f", cfg)
		if err != nil {
			return err
		}
		defer d.Stop()
		var ds []time.Duration
		c.median, ds, err = timeNSRuns(ctx, runs, nil, l.Namespace(netem.SideA), "ssh", "-i", key, "-p", "2222",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "LogLevel=ERROR", "root@"+addr, "true")
		if len(ds) > 0 {
			c.min, c.max = ds[0], ds[len(ds)-1]
		}
		return err
	}()
	return c, true
}

// handshakeGoal is issue 17 §4's goal: a call over QUIC within 0.6 of the
// same call over TCP+TLS, connect to answer.
const handshakeGoal = 0.6

// WriteHandshakesMarkdown prints the cases per profile and, last, the goal
// lines: `goal handshake-call-quic-tcp <profile> ratio <x> target <=0.6
// met|missed` (fresh and resumed), the same for auto resumed, and the
// alknet ssh / OpenSSH ratio.
func WriteHandshakesMarkdown(w io.Writer, results []PathHandshakes, err error) {
	fmt.Fprintf(w, "## Real paths: handshakes\n\n")
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "Run time of one client command in namespace A against `alknet serve` (and sshd) in B, "+
		"process start to exit, median of the runs (min–max). *fresh*: no session ticket in the data dir; "+
		"*resumed*: the ticket of the run before.\n\n")
	fmt.Fprintf(w, "| profile | command | fresh | resumed |\n|---|---|---:|---:|\n")
	var goals []string
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | – | failed: %v | – |\n", r.profile.Name, r.err)
			continue
		}
		fmt.Fprintf(w, "| %s | `ip netns exec A true` (start-up) | %s | – |\n", r.profile.Name, ms(r.start))
		byName := map[string][2]*pathHandshakeCase{}
		var names []string
		for i := range r.cases {
			c := &r.cases[i]
			e, seen := byName[c.name]
			if !seen {
				names = append(names, c.name)
			}
			if c.resumed {
				e[1] = c
			} else {
				e[0] = c
			}
			byName[c.name] = e
		}
		for _, n := range names {
			e := byName[n]
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.profile.Name, n, caseCell(e[0]), caseCell(e[1]))
		}
		ratio := func(name string, a, b *pathHandshakeCase, target float64) {
			if a == nil || b == nil || a.err != nil || b.err != nil || b.median == 0 {
				return
			}
			x := float64(a.median) / float64(b.median)
			verdict := "missed"
			if x <= target {
				verdict = "met"
			}
			goals = append(goals, fmt.Sprintf("goal %s %s ratio %.2f target <=%g %s", name, r.profile.Name, x, target, verdict))
		}
		q, t := byName["call quic"], byName["call tcp"]
		ratio("handshake-call-quic-tcp-fresh", q[0], t[0], handshakeGoal)
		ratio("handshake-call-quic-tcp-resumed", q[1], t[1], handshakeGoal)
		ratio("handshake-call-quic-resumed-fresh", q[1], q[0], 1)
		// What a user who sets no network gets: QUIC raced against
		// TCP+TLS, resumed early.
		ratio("handshake-call-auto-tcp-resumed", byName["call auto"][1], t[1], handshakeGoal)
		if o := byName["openssh ssh"][0]; o != nil {
			ratio("handshake-ssh-true-alknet-openssh", byName["alknet ssh quic"][1], o, 0.5)
		}
	}
	fmt.Fprintln(w)
	for _, g := range goals {
		fmt.Fprintln(w, g)
	}
}

func caseCell(c *pathHandshakeCase) string {
	switch {
	case c == nil:
		return "–"
	case c.err != nil:
		return "failed: " + strings.ReplaceAll(c.err.Error(), "\n", " ")
	}
	return fmt.Sprintf("%s (%s–%s)", ms(c.median), ms(c.min), ms(c.max))
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}
