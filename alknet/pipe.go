package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/core"
)

var pipeCommand = &cli.Command{
	Name:      "pipe",
	Usage:     "bridge standard input and output to one stream of a node",
	ArgsUsage: "[NODEID@]HOST:PORT",
	Description: "Opens one stream with the given ALPN and copies stdin to it and it to stdout,\n" +
		"half-closing each direction when it ends. For stock clients:\n\n" +
		"  ssh -o ProxyCommand='alknet pipe --alpn alknet/ssh %h:%p' user@host\n" +
		"  sftp -D 'alknet pipe --alpn alknet/sftp HOST:PORT'\n" +
		"  git -c core.gitProxy='alknet pipe --alpn alknet/git --git-proxy' ...\n\n" +
		"An address without a NodeID is checked against <data-dir>/known_nodes (first use records it).",
	Flags: withCommon(
		&cli.StringFlag{Name: "alpn", Required: true, Usage: "protocol to open, e.g. alknet/ssh"},
		networkFlag,
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("alknet pipe: want one address, [NODEID@]HOST:PORT", 2)
		}
		d, err := dialer(c)
		if err != nil {
			return err
		}
		conn, err := dial(c.Context, d, c.Args().First(), c.String("alpn"))
		if err != nil {
			return err
		}
		defer conn.CloseWithError(core.CodeNoError, "")
		s, err := conn.OpenStream(c.Context)
		if err != nil {
			return fmt.Errorf("open stream: %w", err)
		}
		return pipe(c.Context, s, os.Stdin, os.Stdout)
	},
}

// pipe copies in to s and s to out until both directions end. When in ends,
// s is half-closed; when s ends, out is closed. It returns nil when both
// directions ended cleanly, and the first error otherwise. If the stream
// ends first, pipe returns without waiting for in, whose reads may block
// forever: the peer is gone and nothing more can be sent.
func pipe(ctx context.Context, s core.Stream, in io.Reader, out io.WriteCloser) error {
	upErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(s, in)
		if err == nil {
			err = s.CloseWrite()
		}
		upErr <- err
	}()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	_, downErr := io.Copy(out, s)
	closeErr := out.Close()
	if downErr != nil {
		s.Close()
		return fmt.Errorf("receive: %w", downErr)
	}
	if closeErr != nil && !errors.Is(closeErr, os.ErrClosed) {
		return fmt.Errorf("close output: %w", closeErr)
	}
	// The peer finished sending. Wait for our side to finish too, unless the
	// peer closed the whole stream, in which case writes fail promptly.
	if err := <-upErr; err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}
