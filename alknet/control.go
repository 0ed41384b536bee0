package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// selfAddr, as a command's address, is the node running on this data dir,
// reached through its control socket.
const selfAddr = "self"

// beside connects for alpn to the node running on this data dir, through
// its control socket (<data-dir>/alknet.sock), as its operator with every
// scope. addr says which node the command means: "self" needs that node
// (an error names the data dir when none runs); "" means it if it runs
// (else ok is false: work on the data dir directly); NODEID@… or a bare
// NODEID means it if the node beside has that NodeID (else ok is false:
// dial over the network). The connection works with the call, fs and msg clients.
func beside(ctx context.Context, c *cli.Context, addr, alpn string) (conn core.Conn, ok bool, err error) {
	want, _, hasID := strings.Cut(addr, "@")
	if _, err := core.ParseNodeID(addr); err == nil {
		want, hasID = addr, true // a bare NodeID: the node beside if it is that node
	}
	if addr != selfAddr && addr != "" && !hasID {
		return nil, false, nil
	}
	dir, err := dataDir(c)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err = node.DialControl(ctx, dir, alpn)
	switch {
	case errors.Is(err, node.ErrNoNode) && addr == selfAddr:
		return nil, false, fmt.Errorf("no node runs on %s (no answer on %s): start it with `alknet serve`", dir, node.ControlPath(dir))
	case errors.Is(err, node.ErrNoNode):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	}
	if hasID && conn.Peer().NodeID.String() != want {
		_ = conn.CloseWithError(core.CodeNoError, "")
		return nil, false, nil
	}
	return conn, true, nil
}

// besideCall is [beside] for alknet/call, as a call client.
func besideCall(ctx context.Context, c *cli.Context, addr string, opts call.Options) (*call.Client, bool, error) {
	conn, ok, err := beside(ctx, c, addr, call.ALPN)
	if !ok || err != nil {
		return nil, ok, err
	}
	cl, err := call.NewClient(ctx, conn, opts)
	if err != nil {
		_ = conn.CloseWithError(core.CodeNoError, "")
		return nil, false, err
	}
	return cl, true, nil
}

// applyBeside makes the node running on this data dir, if any, re-read its
// config file now (sys/reload), after a command changed it: it says
// whether the node applied the change. Without a running node it does
// nothing; the node reads the file when it starts.
func applyBeside(c *cli.Context) error {
	cl, ok, err := besideCall(c.Context, c, "", call.Options{})
	if !ok || err != nil {
		return err
	}
	defer cl.Close()
	var out struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := cl.Call(c.Context, "sys/reload", nil, &out); err != nil {
		return fmt.Errorf("the running node: %w", err)
	}
	if !out.OK {
		return fmt.Errorf("the running node did not apply the file: %s", out.Error)
	}
	fmt.Fprintln(c.App.ErrWriter, "the running node applied it")
	return nil
}
