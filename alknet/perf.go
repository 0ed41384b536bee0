package main

import (
	"context"
	"fmt"
	"sync"

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
		conn, err := dial(c.Context, d, addr, perf.ALPN)
		if err != nil {
			return err
		}
		conns := []core.Conn{conn}
		defer func() {
			for _, c := range conns {
				c.CloseWithError(core.CodeNoError, "")
			}
		}()
		// On QUIC each test stream is a stream of the one connection; over
		// TCP+TLS each needs a connection of its own.
		var mu sync.Mutex // open runs on every test stream's goroutine
		first := true
		open := func(ctx context.Context) (core.Stream, error) {
			if conn.MultiStream() {
				return conn.OpenStream(ctx)
			}
			mu.Lock()
			defer mu.Unlock()
			if first {
				first = false
				return conn.OpenStream(ctx)
			}
			nc, err := dial(ctx, d, addr, perf.ALPN)
			if err != nil {
				return nil, err
			}
			conns = append(conns, nc)
			return nc.OpenStream(ctx)
		}
		n := c.Int64("bytes")
		r, err := perf.Run(c.Context, open, perf.Options{Upload: n, Download: n, Streams: c.Int("streams")})
		if err != nil {
			return err
		}
		transport := "tcp+tls"
		if conn.MultiStream() {
			transport = "quic"
		}
		fmt.Fprintf(c.App.Writer, "%s, %d stream(s)\nupload   %d bytes in %v: %.1f Mbit/s\ndownload %d bytes in %v: %.1f Mbit/s\n",
			transport, c.Int("streams"), r.Uploaded, r.UploadTime.Round(1e6), r.UploadMbps(),
			r.Downloaded, r.DownloadTime.Round(1e6), r.DownloadMbps())
		return nil
	},
}
