package dnsbench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// dnsperfRun is one dnsperf invocation.
type dnsperfRun struct {
	bin      string
	addr     string // host:port
	dot      bool   // -m dot instead of UDP
	queries  string // the query file
	duration time.Duration
	clients  int // -c
	inflight int // -q, in all
}

// args returns dnsperf's command line: -v makes it print one line per
// query with its latency, from which the percentiles come.
func (r dnsperfRun) args() ([]string, error) {
	host, port, err := net.SplitHostPort(r.addr)
	if err != nil {
		return nil, fmt.Errorf("bench: dnsperf: %w", err)
	}
	mode := "udp"
	if r.dot {
		mode = "dot"
	}
	secs := int(math.Ceil(r.duration.Seconds()))
	return []string{"-m", mode, "-s", host, "-p", port, "-d", r.queries, "-l", strconv.Itoa(max(secs, 1)),
		"-c", strconv.Itoa(r.clients), "-q", strconv.Itoa(r.inflight), "-t", strconv.Itoa(int(dnsTimeout.Seconds())), "-v"}, nil
}

// runDnsperf runs dnsperf and reads its summary and per-query latencies.
// Error lines on standard error, and a run that completes no query, are
// errors.
func runDnsperf(ctx context.Context, r dnsperfRun) (DNSResult, error) {
	args, err := r.args()
	if err != nil {
		return DNSResult{}, err
	}
	cmd := exec.CommandContext(ctx, r.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return DNSResult{}, fmt.Errorf("bench: dnsperf: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return DNSResult{}, fmt.Errorf("bench: dnsperf: %w", err)
	}
	res, perr := parseDnsperf(out)
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return res, fmt.Errorf("bench: dnsperf %s: %w: %s", strings.Join(args, " "), err, firstLine(stderr.String()))
	}
	if perr != nil {
		return res, fmt.Errorf("bench: dnsperf %s: %w", strings.Join(args, " "), perr)
	}
	if res.queries == 0 {
		return res, fmt.Errorf("bench: dnsperf %s: no query completed: %s", strings.Join(args, " "), firstLine(stderr.String()))
	}
	return res, nil
}

// parseDnsperf reads dnsperf -v output: lines "> RCODE NAME TYPE LATENCY"
// for each answered query ("> T NAME TYPE" for one that timed out), and the statistics block ("Queries completed:",
// "Queries lost:", "Run time (s):").
func parseDnsperf(r io.Reader) (DNSResult, error) {
	var res DNSResult
	var lats []time.Duration
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "> "); ok {
			f := strings.Fields(rest)
			if len(f) < 2 || f[0] == "T" {
				continue // "> T NAME TYPE": timed out, counted in "Queries lost"
			}
			sec, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return res, fmt.Errorf("latency in %q: %w", line, err)
			}
			lats = append(lats, time.Duration(sec*float64(time.Second)))
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		var err error
		switch k {
		case "Queries completed":
			res.queries, err = strconv.Atoi(f[0])
		case "Queries lost":
			res.Lost, err = strconv.Atoi(f[0])
		case "Run time (s)":
			var s float64
			s, err = strconv.ParseFloat(f[0], 64)
			res.elapsed = time.Duration(s * float64(time.Second))
		}
		if err != nil {
			return res, fmt.Errorf("%q: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return res, err
	}
	if res.elapsed == 0 {
		return res, fmt.Errorf("no \"Run time (s):\" line")
	}
	res.P50, res.P99 = harness.Percentile(lats, 50), harness.Percentile(lats, 99)
	return res, nil
}

// dnsperfVersion returns dnsperf's "Version …" line.
func dnsperfVersion(ctx context.Context, bin string) (string, error) {
	out, _ := exec.CommandContext(ctx, bin, "-h").CombinedOutput() // -h exits 1
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Version ") {
			return strings.TrimSpace(l), nil
		}
	}
	return "", fmt.Errorf("bench: %s -h: no version line", bin)
}

// firstLine returns s's first non-empty line.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}
