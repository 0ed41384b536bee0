package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/core"
)

var pipeCommand = &cli.Command{
	Name:      "pipe",
	Usage:     "bridge standard input and output to one stream of a node",
	ArgsUsage: "[NODEID@]HOST:PORT | --git-proxy HOST PORT",
	Description: "Opens one stream with the given ALPN and copies stdin to it and it to stdout,\n" +
		"half-closing each direction when it ends. For stock clients:\n\n" +
		"  ssh -o ProxyCommand='alknet pipe --alpn alknet/ssh %h:4433' user@host   (the node's port: ssh's %p is 22)\n" +
		"  sftp -D 'alknet pipe --alpn alknet/sftp HOST:PORT'\n" +
		"  git -c core.gitProxy=alknet-git-proxy clone git://HOST:PORT/REPO.git   (alknet git install-helper)\n\n" +
		"An address without a NodeID is checked against <data-dir>/known_nodes (first use records it).\n" +
		"With --git-proxy the address comes as the two arguments git's core.gitProxy passes, HOST PORT.",
	Flags: withCommon(
		&cli.StringFlag{Name: "alpn", Required: true, Usage: "protocol to open, e.g. alknet/ssh"},
		networkFlag,
		&cli.BoolFlag{Name: "git-proxy", Usage: "take the address as HOST PORT, the arguments of git's core.gitProxy"},
	),
	Action: func(c *cli.Context) error {
		addr := c.Args().First()
		switch {
		case c.Bool("git-proxy") && c.NArg() == 2:
			addr = net.JoinHostPort(c.Args().Get(0), c.Args().Get(1))
		case c.Bool("git-proxy"):
			return cli.Exit("alknet pipe --git-proxy: want HOST PORT", 2)
		case c.NArg() != 1:
			return cli.Exit("alknet pipe: want one address, [NODEID@]HOST:PORT", 2)
		}
		d, err := dialer(c)
		if err != nil {
			return err
		}
		// The connection logs on stderr at --log-level: stdout is the stream.
		if d.Logger, err = newLogger(c); err != nil {
			return err
		}
		conn, err := dial(c.Context, d, addr, c.String("alpn"))
		if err != nil {
			return err
		}
		defer conn.CloseWithError(core.CodeNoError, "")
		s, err := conn.OpenStream(c.Context)
		if err != nil {
			return fmt.Errorf("open stream: %w", err)
		}
		return pipe(c.Context, conn, s, os.Stdin, os.Stdout)
	},
}

// pipe copies in to s and s to out. When in ends, s is half-closed; when s
// ends, out is closed. It returns nil once both directions ended cleanly:
// the peer's end of stream is taken as its acknowledgement of what we sent,
// as with TCP half-close, and the caller then closes the connection; a peer
// that also stopped reading (QUIC STOP_SENDING, no error) ended the exchange. On any
// error, or when ctx ends, the stream is aborted so the peer sees a failure,
// never a clean but truncated stream. If the connection ends while in is
// still open, pipe returns with that error instead of waiting for in.
func pipe(ctx context.Context, conn core.Conn, s core.Stream, in io.Reader, out io.WriteCloser) error {
	upErr := make(chan error, 1)
	go func() {
		_, err := io.Copy(s, in)
		if err == nil {
			err = s.CloseWrite()
		}
		upErr <- err
	}()
	stop := context.AfterFunc(ctx, func() { s.Abort(core.CodeShutdown) })
	defer stop()
	_, err := io.Copy(out, s)
	if err == nil {
		if err = out.Close(); errors.Is(err, os.ErrClosed) {
			err = nil
		}
	}
	if err != nil {
		s.Abort(core.CodeInternal)
		return fmt.Errorf("receive: %w", err)
	}
	select {
	case err = <-upErr:
	case <-conn.Context().Done():
		cause := context.Cause(conn.Context())
		if !errors.Is(cause, io.EOF) {
			return fmt.Errorf("send: %w", cause)
		}
		// The stream ended cleanly both ways: our half-close went out, so
		// the sender is about to report.
		err = <-upErr
	}
	if err != nil && !core.PeerStopped(err) {
		// A peer that ended its side cleanly and then stopped reading ours
		// closed the exchange, as a TCP server does: what we had left to
		// send was not wanted.
		s.Abort(core.CodeInternal)
		return fmt.Errorf("send: %w", err)
	}
	return nil
}
