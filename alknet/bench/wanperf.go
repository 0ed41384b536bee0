package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// perfResult is one `alknet perf` run: bytes per second each way.
type perfResult struct{ up, down float64 }

// perfLine reads `alknet perf`'s "upload …: X Mbit/s" and "download …"
// lines.
var perfLine = regexp.MustCompile(`(?m)^(upload|download)\s.*: ([0-9.]+) Mbit/s$`)

// AlknetPerfTransfers are `alknet perf` over QUIC across an emulated link,
// as wan-scenario transfers: `alknet serve` (bin) runs in namespace B, and
// `alknet perf --bytes bytes` in A uploads and then downloads on the same
// stream, as issue 17 measured it. The upload and the download that
// follows are two transfers of one run per link.
func AlknetPerfTransfers(bin string, bytes int64) []WANTransfer {
	measure := oncePerLink(func(ctx context.Context, l *Link) (perfResult, error) {
		return runAlknetPerf(ctx, l, bin, bytes)
	})
	return []WANTransfer{
		{Name: "alknet-perf-up", Run: func(ctx context.Context, l *Link) (float64, error) {
			r, err := measure(ctx, l)
			return r.up, err
		}},
		{Name: "alknet-perf-down-after-up", Run: func(ctx context.Context, l *Link) (float64, error) {
			r, err := measure(ctx, l)
			return r.down, err
		}},
	}
}

// runAlknetPerf starts a node in B whose one peer (the client's key) may
// use perf, runs `alknet perf` from A, and stops the node.
func runAlknetPerf(ctx context.Context, l *Link, bin string, bytes int64) (perfResult, error) {
	var res perfResult
	dir, err := os.MkdirTemp("", "alknet-bench-wanperf-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	server, client := filepath.Join(dir, "server"), filepath.Join(dir, "client")
	_, _, out, err := timeCommand(ctx, bin, "id", "--data-dir", client)
	if err != nil {
		return res, fmt.Errorf("bench: alknet id: %w", err)
	}
	clientID, _, _ := strings.Cut(string(out), "\n")
	if err := os.MkdirAll(server, 0o700); err != nil {
		return res, err
	}
	config := fmt.Sprintf("[[peers]]\nid = \"bench\"\nkeys = [%q]\nscopes = [\"perf\"]\n", clientID)
	if err := os.WriteFile(filepath.Join(server, "alknet.toml"), []byte(config), 0o600); err != nil {
		return res, err
	}
	hostport := netip.AddrPortFrom(l.Addr(SideB), 4433).String()
	node, m, err := startChild(ctx, listeningLine, "ip", "netns", "exec", l.Namespace(SideB),
		bin, "serve", "--data-dir", server, "--listen", hostport)
	if err != nil {
		return res, fmt.Errorf("bench: alknet serve in %s: %w", l.Namespace(SideB), err)
	}
	defer node.stop()
	out, err = runChild(ctx, 5*time.Minute, "", "ip", "netns", "exec", l.Namespace(SideA),
		bin, "perf", "--data-dir", client, "--network", "quic", "--bytes", strconv.FormatInt(bytes, 10), m[1]+"@"+hostport)
	if err != nil {
		return res, fmt.Errorf("bench: alknet perf: %w: %s", err, out)
	}
	for _, p := range perfLine.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		if p[1] == "upload" {
			res.up = v * 1e6 / 8
		} else {
			res.down = v * 1e6 / 8
		}
	}
	if res.up == 0 || res.down == 0 {
		return res, fmt.Errorf("bench: alknet perf printed %q", out)
	}
	return res, nil
}
