package main

import (
	"context"
	"fmt"
	"net"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

var pingCommand = &cli.Command{
	Name:      "ping",
	Usage:     "measure the round trip to a node, and show the path the connection took",
	ArgsUsage: "[NODEID@]HOST:PORT|NODEID",
	Description: "Connects over alknet/call, then calls services/ping (public: no scope needed)\n" +
		"--count times, --interval apart, printing each round trip and then the minimum,\n" +
		"average and maximum. The path is where the connection went: direct to the node's\n" +
		"address (QUIC or TCP+TLS), direct after a punch through the head of --via, or relayed\n" +
		"via that head. Exits 1 when no reply came.",
	Flags: withCommon(
		&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Value: 4, Usage: "pings to send (1 to 1000)"},
		&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: time.Second, Usage: "wait between pings (at least 10ms)"},
		&cli.BoolFlag{Name: "json", Usage: "print one JSON object at the end instead of lines"},
		networkFlag,
	),
	Action: pingAction,
}

// pingTimeout bounds one ping's reply.
const pingTimeout = 5 * time.Second

// pingJSON is `ping --json`'s object. Times are in milliseconds.
type pingJSON struct {
	Node      string    `json:"nodeId"`
	Path      string    `json:"path"`
	ConnectMS float64   `json:"connectMs"`
	RTTsMS    []float64 `json:"rttsMs"`
	Lost      int       `json:"lost"`
}

func pingAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("alknet ping: want one node address", 2)
	}
	count, interval := c.Int("count"), c.Duration("interval")
	if count < 1 || count > 1000 {
		return cli.Exit("alknet ping: --count: want 1 to 1000", 2)
	}
	if interval < 10*time.Millisecond {
		return cli.Exit("alknet ping: --interval: want at least 10ms", 2)
	}
	addr := c.Args().First()
	noteAddr(addr)
	d, err := dialer(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	start := time.Now()
	client, err := call.Dial(dctx, addr, call.Options{Dialer: d})
	cancel()
	if err != nil {
		return err
	}
	defer client.Close()
	connect := time.Since(start)
	peer := client.Peer()
	path := pathOf(peer, d.Via)
	w, asJSON := c.App.Writer, c.Bool("json")
	if !asJSON {
		fmt.Fprintf(w, "PING %s: connected in %s, path %s\n", peer.NodeID.ShortString(), ms(connect), path)
	}
	res := pingJSON{Node: peer.NodeID.String(), Path: path, ConnectMS: msf(connect), RTTsMS: []float64{}}
	var rtts []time.Duration
	for i := range count {
		if i > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
		if ctx.Err() != nil {
			break
		}
		pctx, cancel := context.WithTimeout(ctx, pingTimeout)
		t0 := time.Now()
		err := client.Call(pctx, "services/ping", nil, nil)
		rtt := time.Since(t0)
		cancel()
		if err != nil {
			res.Lost++
			if !asJSON {
				fmt.Fprintf(w, "ping %d: no reply: %v\n", i+1, err)
			}
			continue
		}
		rtts = append(rtts, rtt)
		res.RTTsMS = append(res.RTTsMS, msf(rtt))
		if !asJSON {
			fmt.Fprintf(w, "ping %d: %s\n", i+1, ms(rtt))
		}
	}
	if asJSON {
		if err := printJSON(c, res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(w, "--- %s: %d replies, %d lost", peer.NodeID.ShortString(), len(rtts), res.Lost)
		if len(rtts) > 0 {
			lo, hi, sum := rtts[0], rtts[0], time.Duration(0)
			for _, r := range rtts {
				lo, hi, sum = min(lo, r), max(hi, r), sum+r
			}
			fmt.Fprintf(w, "; rtt min/avg/max %s/%s/%s", ms(lo), ms(sum/time.Duration(len(rtts))), ms(hi))
		}
		fmt.Fprintf(w, "; path %s\n", path)
	}
	if len(rtts) == 0 {
		return cli.Exit("", 1)
	}
	return nil
}

// pathOf says where a connection went: "relay via HEAD", or "direct
// ADDR (quic|tcp+tls)", with ", punched via HEAD" when a head made the
// direct path.
func pathOf(p core.Peer, via string) string {
	switch a := p.RemoteAddr.(type) {
	case core.RelayAddr:
		if via != "" {
			return "relay via " + via
		}
		return "relay via " + strings.TrimPrefix(a.String(), "relay:")
	case *net.UDPAddr:
		if via != "" {
			return fmt.Sprintf("direct %s (quic), punched via %s", a, via)
		}
		return fmt.Sprintf("direct %s (quic)", a)
	case nil:
		return "unknown"
	default:
		return fmt.Sprintf("direct %s (tcp+tls)", a)
	}
}

// ms prints d in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", msf(d)) }

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
