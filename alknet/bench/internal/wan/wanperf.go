package wan

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

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
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
	measure := oncePerLink(func(ctx context.Context, l *netem.Link) (perfResult, error) {
		return runAlknetPerf(ctx, l, bin, bytes)
	})
	return []WANTransfer{
		{name: "alknet-perf-up", run: func(ctx context.Context, l *netem.Link) (float64, error) {
			r, err := measure(ctx, l)
			return r.up, err
		}},
		{name: "alknet-perf-down-after-up", run: func(ctx context.Context, l *netem.Link) (float64, error) {
			r, err := measure(ctx, l)
			return r.down, err
		}},
	}
}

// runAlknetPerf starts a node in B whose one peer (the client's key) may
// use perf, runs `alknet perf` from A, and stops the node.
func runAlknetPerf(ctx context.Context, l *netem.Link, bin string, bytes int64) (perfResult, error) {
	dir, err := os.MkdirTemp("", "alknet-bench-wanperf-")
	if err != nil {
		return perfResult{}, err
	}
	defer os.RemoveAll(dir)
	n, err := startWANNode(ctx, l, bin, dir, []string{"perf"}, nil)
	if err != nil {
		return perfResult{}, err
	}
	defer n.stop()
	out, res, err := n.perf(ctx, l, bin, "quic", bytes, 5*time.Minute)
	if err == nil && res.up == 0 {
		err = fmt.Errorf("bench: alknet perf printed %q", out)
	}
	return res, err
}

// wanNode is an `alknet serve` in a link's namespace B whose one peer is a
// client data dir of its own.
type wanNode struct {
	client string // the client's data dir
	addr   string // the node's pinned address, NODEID@host:port
	stop   func() error
}

// startWANNode makes a client data dir and a node data dir under dir,
// configures the node with one peer, the client's key, holding scopes (and
// extra TOML after it), lets prepare (if set) add to the node's data dir,
// and starts the node in B on port 4433. The caller stops it.
func startWANNode(ctx context.Context, l *netem.Link, bin, dir string, scopes []string, prepare func(server string) error, extra ...string) (*wanNode, error) {
	server, client := filepath.Join(dir, "server"), filepath.Join(dir, "client")
	clientID, _, err := harness.AlknetID(ctx, bin, client)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(server, 0o700); err != nil {
		return nil, err
	}
	quoted := make([]string, len(scopes))
	for i, sc := range scopes {
		quoted[i] = strconv.Quote(sc)
	}
	config := fmt.Sprintf("[[peers]]\nid = \"bench\"\nkeys = [%q]\nscopes = [%s]\n%s", clientID, strings.Join(quoted, ", "), strings.Join(extra, "\n"))
	if err := os.WriteFile(filepath.Join(server, "alknet.toml"), []byte(config), 0o600); err != nil {
		return nil, err
	}
	if prepare != nil {
		if err := prepare(server); err != nil {
			return nil, err
		}
	}
	hostport := netip.AddrPortFrom(l.Addr(netem.SideB), 4433).String()
	node, m, err := harness.StartChild(ctx, harness.ListeningLine, "ip", "netns", "exec", l.Namespace(netem.SideB),
		bin, "serve", "--data-dir", server, "--listen", hostport)
	if err != nil {
		return nil, fmt.Errorf("bench: alknet serve in %s: %w", l.Namespace(netem.SideB), err)
	}
	return &wanNode{client: client, addr: m[1] + "@" + hostport, stop: node.Stop}, nil
}

// perf runs `alknet perf --bytes bytes` from A with network ("" for auto)
// and returns its output and rates; a run that printed no download rate is
// an error.
func (n *wanNode) perf(ctx context.Context, l *netem.Link, bin, network string, bytes int64, timeout time.Duration) (string, perfResult, error) {
	out, err := harness.RunChild(ctx, timeout, "", "ip", "netns", "exec", l.Namespace(netem.SideA),
		bin, "perf", "--data-dir", n.client, "--network", network, "--bytes", strconv.FormatInt(bytes, 10), n.addr)
	if err != nil {
		return "", perfResult{}, fmt.Errorf("bench: alknet perf: %w: %s", err, out)
	}
	var r perfResult
	for _, p := range perfLine.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		if p[1] == "upload" {
			r.up = v * 1e6 / 8
		} else {
			r.down = v * 1e6 / 8
		}
	}
	if r.down == 0 {
		return "", r, fmt.Errorf("bench: alknet perf printed %q", out)
	}
	return string(out), r, nil
}
