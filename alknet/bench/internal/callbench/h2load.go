package callbench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// H2LoadResult is one h2load run: requests per second and the mean time
// per request, as h2load reports them.
type H2LoadResult struct {
	Run    int
	System CallSystem
	Rate   float64
	Mean   time.Duration
}

// H2LoadConfig is an interleaved h2load comparison of REST over h2 on an
// alknet node and the plain net/http handler.
type H2LoadConfig struct {
	// binary is h2load; empty means h2load from PATH.
	binary string
	// requests per run; zero means 20000.
	requests int
	// streams is how many requests h2load keeps in flight on its one
	// connection (-c 1 -m Streams); zero means 16.
	streams int
	// Runs is how many rounds run; zero means 5.
	Runs int
}

// CompareH2Load runs h2load (from nghttp2) against REST over h2 and the
// plain net/http handler, interleaved, and returns each run.
func CompareH2Load(ctx context.Context, cfg H2LoadConfig) ([]H2LoadResult, error) {
	if cfg.binary == "" {
		cfg.binary = "h2load"
	}
	bin, err := exec.LookPath(cfg.binary)
	if err != nil {
		return nil, fmt.Errorf("bench: h2load: %w (Debian: nghttp2-client)", err)
	}
	cfg.requests = cmp.Or(cfg.requests, 20000)
	cfg.streams = cmp.Or(cfg.streams, 16)
	cfg.Runs = cmp.Or(cfg.Runs, 5)
	dir, err := os.MkdirTemp("", "alknet-h2load")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	body, _ := json.Marshal(newPayload())
	data := filepath.Join(dir, "payload.json")
	if err := os.WriteFile(data, body, 0o600); err != nil {
		return nil, err
	}
	rest, err := startREST(RESTH2)
	if err != nil {
		return nil, err
	}
	defer rest.close()
	plain, err := startPlainH2()
	if err != nil {
		return nil, err
	}
	defer plain.close()
	targets := []struct {
		sys    CallSystem
		client *httpClient
	}{{RESTH2, rest}, {PlainH2, plain}}
	var out []H2LoadResult
	for run := 1; run <= cfg.Runs; run++ {
		for i := range targets {
			t := targets[(i+run-1)%len(targets)]
			args := []string{"-n", strconv.Itoa(cfg.requests), "-c", "1", "-m", strconv.Itoa(cfg.streams), "-d", data,
				"-H", "content-type: application/json"}
			if t.client.token != "" {
				args = append(args, "-H", "authorization: Bearer "+t.client.token)
			}
			res, err := runH2Load(ctx, bin, append(args, t.client.url))
			if err != nil {
				return out, fmt.Errorf("bench: h2load %s: %w", t.sys, err)
			}
			res.Run, res.System = run, t.sys
			out = append(out, res)
		}
	}
	return out, nil
}

// h2load's summary lines.
var (
	h2loadRate   = regexp.MustCompile(`finished in [^,]+, ([0-9.]+) req/s`)
	h2loadDone   = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded`)
	h2loadStatus = regexp.MustCompile(`status codes: (\d+) 2xx`)
	h2loadTime   = regexp.MustCompile(`time for request:\s+(\S+)\s+(\S+)\s+(\S+)`)
)

// runH2Load runs h2load and parses its summary.
func runH2Load(ctx context.Context, bin string, args []string) (H2LoadResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return H2LoadResult{}, fmt.Errorf("%w: %s", err, b)
	}
	return parseH2Load(string(b))
}

// parseH2Load reads the rate and the mean time per request from h2load's
// summary; a request that did not answer 2xx fails the run.
func parseH2Load(out string) (H2LoadResult, error) {
	rate, done, status, tm := h2loadRate.FindStringSubmatch(out), h2loadDone.FindStringSubmatch(out),
		h2loadStatus.FindStringSubmatch(out), h2loadTime.FindStringSubmatch(out)
	if rate == nil || done == nil || status == nil || tm == nil {
		return H2LoadResult{}, fmt.Errorf("unexpected output: %s", out)
	}
	if done[1] != done[2] || status[1] != done[1] {
		return H2LoadResult{}, fmt.Errorf("%s of %s requests succeeded with 2xx: %s", status[1], done[1], out)
	}
	var res H2LoadResult
	var err error
	res.Rate, err = strconv.ParseFloat(rate[1], 64)
	if err == nil {
		res.Mean, err = time.ParseDuration(tm[3])
	}
	return res, err
}
