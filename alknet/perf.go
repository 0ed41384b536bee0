package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/perf"
)

var perfCommand = &cli.Command{
	Name:      "perf",
	Usage:     "measure throughput to a node both ways (alknet/perf; needs the perf scope there)",
	ArgsUsage: "[NODEID@]HOST:PORT",
	Flags: withCommon(
		&cli.Int64Flag{Name: "bytes", Value: 64 << 20, Usage: "bytes to send and to receive per stream"},
		&cli.IntFlag{Name: "streams", Value: 1, Usage: "parallel streams (on TCP: parallel connections)"},
		networkFlag,
		&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object"},
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("alknet perf: want one address, [NODEID@]HOST:PORT", 2)
		}
		if c.Int64("bytes") < 0 || c.Int("streams") < 1 {
			return cli.Exit("alknet perf: --bytes must be >= 0 and --streams >= 1", 2)
		}
		d, err := dialer(c)
		if err != nil {
			return err
		}
		addr := c.Args().First()
		opts := perf.Options{Upload: c.Int64("bytes"), Download: c.Int64("bytes"), Streams: c.Int("streams")}
		run, err := runPerf(c.Context, d, addr, opts)
		var fellBack *perfFallback
		if errors.Is(err, errLossBound) {
			// The dialer remembered TCP+TLS for the node: run again on it.
			fellBack = &perfFallback{After: run.elapsed.Seconds(), Verdict: run.verdict.String()}
			if !c.Bool("json") {
				fmt.Fprintf(c.App.Writer, "quic: bound by loss after %v (%v); switching to tcp+tls\n",
					run.elapsed.Round(1e6), run.verdict)
			}
			run, err = runPerf(c.Context, d, addr, opts)
		}
		if err != nil {
			return err
		}
		r := run.Result
		if c.Bool("json") {
			out := perfJSON{Transport: run.transport, Streams: c.Int("streams"), QUICFallback: fellBack,
				Upload:   perfWay{Bytes: r.Uploaded, Seconds: r.UploadTime.Seconds(), Mbps: r.UploadMbps()},
				Download: perfWay{Bytes: r.Downloaded, Seconds: r.DownloadTime.Seconds(), Mbps: r.DownloadMbps()}}
			if run.judged {
				out.Path = run.verdict.String()
			}
			return printJSON(c, out)
		}
		fmt.Fprintf(c.App.Writer, "%s, %d stream(s)\nupload   %d bytes in %v: %.1f Mbit/s\ndownload %d bytes in %v: %.1f Mbit/s\n",
			run.transport, c.Int("streams"), r.Uploaded, r.UploadTime.Round(1e6), r.UploadMbps(),
			r.Downloaded, r.DownloadTime.Round(1e6), r.DownloadMbps())
		if run.judged {
			fmt.Fprintf(c.App.Writer, "path: %v\n", run.verdict)
		}
		return nil
	},
}

// perfJSON is `perf --json`'s object.
type perfJSON struct {
	Transport string  `json:"transport"`
	Streams   int     `json:"streams"`
	Upload    perfWay `json:"upload"`
	Download  perfWay `json:"download"`
	// Path is the dialer's judgement of the QUIC path, if it made one.
	Path string `json:"path,omitempty"`
	// QUICFallback is set when QUIC was bound by loss and the run was
	// made again on TCP+TLS.
	QUICFallback *perfFallback `json:"quicFallback,omitempty"`
}

// perfWay is one direction of a perf run.
type perfWay struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	Mbps    float64 `json:"mbps"`
}

// perfFallback is the QUIC run that was found bound by loss.
type perfFallback struct {
	After   float64 `json:"afterSeconds"`
	Verdict string  `json:"verdict"`
}

// perfRun is one runPerf: the result, the transport ("quic" or
// "tcp+tls"), how long it ran, and the dialer's last judgement of a QUIC
// connection (judged false if there was none).
type perfRun struct {
	perf.Result
	transport string
	elapsed   time.Duration
	verdict   core.PathVerdict
	judged    bool
}

// errLossBound ends a perf run whose QUIC connection the dialer found bound
// by loss.
var errLossBound = errors.New("quic connection bound by loss")

// runPerf dials addr and runs one perf test on it. On QUIC each test
// stream is a stream of the one connection; over TCP+TLS each needs a
// connection of its own. If the dialer finds the QUIC connection bound by
// loss (and so remembered TCP+TLS for the node) the run stops with
// errLossBound, so that the caller can run again on TCP+TLS.
func runPerf(ctx context.Context, d *core.Dialer, addr string, opts perf.Options) (run perfRun, err error) {
	start := time.Now()
	conn, err := dial(ctx, d, addr, perf.ALPN)
	if err != nil {
		return run, err
	}
	run.transport = "tcp+tls"
	if conn.MultiStream() {
		run.transport = "quic"
	}
	defer conn.CloseWithError(core.CodeNoError, "")
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if lb := d.LossBound(conn); lb != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-lb:
				cancel(errLossBound)
			case <-stop:
			}
		}()
	}
	streams := core.NewStreams(conn, func(ctx context.Context) (core.Conn, error) { return dial(ctx, d, addr, perf.ALPN) })
	defer streams.Close()
	run.Result, err = perf.Run(ctx, streams.Open, opts)
	run.elapsed = time.Since(start)
	run.verdict, run.judged = d.PathVerdictOf(conn)
	if err != nil && errors.Is(context.Cause(ctx), errLossBound) {
		err = errLossBound
	}
	return run, err
}
