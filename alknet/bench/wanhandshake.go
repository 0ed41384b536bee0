package bench

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
)

// PathHandshakeCase is one command of the handshake benchmark: a fresh run
// (no session ticket in the client's data dir) or a resumed one (a ticket
// from the previous run).
type PathHandshakeCase struct {
	Name    string // "call quic fresh", ...
	Median  time.Duration
	Min     time.Duration
	Max     time.Duration
	Err     error
	Runs    int
	Resumed bool
}

// PathHandshakes is the handshake benchmark on one link profile.
type PathHandshakes struct {
	Profile LinkProfile
	Err     error
	Verify  VerifyResult
	// Start is the median run time of `ip netns exec <A> true`: the
	// process start-up every case pays.
	Start time.Duration
	Cases []PathHandshakeCase
}

// RunHandshakes measures, on each profile, the run time of short client
// commands across the emulated path: `alknet call sys/info` over QUIC and
// TCP+TLS, fresh and resumed, `alknet ssh HOST true` over QUIC, and
// OpenSSH's `ssh HOST true` when sshd and ssh are installed. The node
// (and sshd) run in namespace B, the clients in A. runs is the number of
// runs of each case (median reported).
func RunHandshakes(ctx context.Context, bin string, profiles []LinkProfile, runs int) ([]PathHandshakes, error) {
	var out []PathHandshakes
	var errs []error
	for _, p := range profiles {
		r := PathHandshakes{Profile: p}
		r.Err = func() error {
			l, err := StartLink(ctx, p)
			if err != nil {
				return err
			}
			defer l.Close()
			if r.Verify, err = l.Verify(ctx, VerifyOptions{TCPDuration: 2 * time.Second}); err != nil {
				return err
			}
			if !r.Verify.OK() {
				return r.Verify.Err()
			}
			return runHandshakeCases(ctx, l, bin, runs, &r)
		}()
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("handshakes %s: %w", p.Name, r.Err))
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func runHandshakeCases(ctx context.Context, l *Link, bin string, runs int, r *PathHandshakes) error {
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
	client, addr := n.Client, n.Addr
	sessions := filepath.Join(client, "tls_sessions")

	r.Start, _, err = timeNSRuns(ctx, runs, nil, l.Namespace(SideA), "true")
	if err != nil {
		return err
	}
	type variant struct {
		name    string
		resumed bool
		args    []string
	}
	var vs []variant
	for _, network := range []string{"quic", "tcp"} {
		for _, resumed := range []bool{false, true} {
			vs = append(vs, variant{"call " + network, resumed,
				[]string{bin, "call", "--data-dir", client, "--network", network, addr, "sys/info"}})
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
				_, err := runChild(ctx, time.Minute, "", "ip", append([]string{"netns", "exec", l.Namespace(SideA)}, v.args...)...)
				return err
			}
		}
		c := PathHandshakeCase{Name: v.name, Resumed: v.resumed, Runs: runs}
		var ds []time.Duration
		c.Median, ds, c.Err = timeNSRuns(ctx, runs, prep, l.Namespace(SideA), v.args...)
		if len(ds) > 0 {
			c.Min, c.Max = ds[0], ds[len(ds)-1]
		}
		r.Cases = append(r.Cases, c)
	}
	if c, ok := openSSHCase(ctx, l, dir, runs); ok {
		r.Cases = append(r.Cases, c)
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
		cmd.Env = childEnv()
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = io.Discard, &out
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		cancel()
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, lastLines(out.String(), tailLines))
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds, nil
}

// openSSHCase times a stock `ssh HOST true` against an sshd in B, when
// both are installed.
func openSSHCase(ctx context.Context, l *Link, dir string, runs int) (PathHandshakeCase, bool) {
	c := PathHandshakeCase{Name: "openssh ssh", Runs: runs}
	sshd, err := lookTool("sshd")
	if err != nil {
		return c, false
	}
	if _, err := lookTool("ssh"); err != nil {
		return c, false
	}
	c.Err = func() error {
		key, hostKey := filepath.Join(dir, "id_ed25519"), filepath.Join(dir, "host_ed25519")
		for _, k := range []string{key, hostKey} {
			if _, err := runChild(ctx, 10*time.Second, "", "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k); err != nil {
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
		addr := l.Addr(SideB).String()
		cfg := filepath.Join(dir, "sshd_config")
		conf := strings.Join([]string{"ListenAddress " + addr + ":2222", "HostKey " + hostKey, "PidFile none", "UsePAM no",
			"AuthorizedKeysFile " + authorized, "StrictModes no", "PasswordAuthentication no",
			"KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UseDNS no", "PrintMotd no", "PrintLastLog no"}, "\n") + "\n"
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			return err
		}
		d, _, err := startChild(ctx, regexp.MustCompile(`Server listening on `+regexp.QuoteMeta(addr)),
			"ip", "netns", "exec", l.Namespace(SideB), sshd, "-D", "-e", "-f", cfg)
		if err != nil {
			return err
		}
		defer d.stop()
		var ds []time.Duration
		c.Median, ds, err = timeNSRuns(ctx, runs, nil, l.Namespace(SideA), "ssh", "-i", key, "-p", "2222",
			"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "LogLevel=ERROR", "root@"+addr, "true")
		if len(ds) > 0 {
			c.Min, c.Max = ds[0], ds[len(ds)-1]
		}
		return err
	}()
	return c, true
}

// HandshakeGoal is issue 17 §4's goal: a call over QUIC within 0.6 of the
// same call over TCP+TLS, connect to answer.
const HandshakeGoal = 0.6

// WriteHandshakesMarkdown prints the cases per profile and, last, the goal
// lines: `goal handshake-call-quic-tcp <profile> ratio <x> target <=0.6
// met|missed` (fresh and resumed) and the alknet ssh / OpenSSH ratio.
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
		if r.Err != nil {
			fmt.Fprintf(w, "| %s | – | failed: %v | – |\n", r.Profile.Name, r.Err)
			continue
		}
		fmt.Fprintf(w, "| %s | `ip netns exec A true` (start-up) | %s | – |\n", r.Profile.Name, ms(r.Start))
		byName := map[string][2]*PathHandshakeCase{}
		var names []string
		for i := range r.Cases {
			c := &r.Cases[i]
			e, seen := byName[c.Name]
			if !seen {
				names = append(names, c.Name)
			}
			if c.Resumed {
				e[1] = c
			} else {
				e[0] = c
			}
			byName[c.Name] = e
		}
		for _, n := range names {
			e := byName[n]
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.Profile.Name, n, caseCell(e[0]), caseCell(e[1]))
		}
		ratio := func(name string, a, b *PathHandshakeCase, target float64) {
			if a == nil || b == nil || a.Err != nil || b.Err != nil || b.Median == 0 {
				return
			}
			x := float64(a.Median) / float64(b.Median)
			verdict := "missed"
			if x <= target {
				verdict = "met"
			}
			goals = append(goals, fmt.Sprintf("goal %s %s ratio %.2f target <=%g %s", name, r.Profile.Name, x, target, verdict))
		}
		q, t := byName["call quic"], byName["call tcp"]
		ratio("handshake-call-quic-tcp-fresh", q[0], t[0], HandshakeGoal)
		ratio("handshake-call-quic-tcp-resumed", q[1], t[1], HandshakeGoal)
		ratio("handshake-call-quic-resumed-fresh", q[1], q[0], 1)
		if o := byName["openssh ssh"][0]; o != nil {
			ratio("handshake-ssh-true-alknet-openssh", byName["alknet ssh quic"][1], o, 0.5)
		}
	}
	fmt.Fprintln(w)
	for _, g := range goals {
		fmt.Fprintln(w, g)
	}
}

func caseCell(c *PathHandshakeCase) string {
	switch {
	case c == nil:
		return "–"
	case c.Err != nil:
		return "failed: " + strings.ReplaceAll(c.Err.Error(), "\n", " ")
	}
	return fmt.Sprintf("%s (%s–%s)", ms(c.Median), ms(c.Min), ms(c.Max))
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}
