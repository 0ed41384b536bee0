package main

import (
	"context"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core"
)

var serveCommand = &cli.Command{
	Name:  "serve",
	Usage: "run the node: every service on one port",
	Description: "Runs every service on one address for QUIC and TCP+TLS (default [::]:4433). With no\n" +
		"config file it runs on embedded defaults. The vault is created on first start; its\n" +
		"recovery phrase goes to stderr on a terminal, else to <data-dir>/recovery-phrase.txt.\n" +
		"Peers and tokens in the config file are reloaded on SIGHUP and when the file changes.",
	Flags: withCommon(
		&cli.StringFlag{
			Name:  "listen",
			Usage: "host:port for QUIC and TCP+TLS (overrides node.listen)",
		},
		&cli.StringFlag{
			Name:  "join",
			Usage: "also act as a worker of the head at [NODEID@]HOST:PORT: stay connected and serve it this node's operations",
		},
	),
	Action: serve,
}

func serve(c *cli.Context) error {
	if c.IsSet("via") {
		return cli.Exit("alknet serve: --via is for client commands; a node reachable through a head joins it with --join HEAD", 2)
	}
	logger, err := newLogger(c)
	if err != nil {
		return err
	}
	dir, err := dataDir(c)
	if err != nil {
		return err
	}
	cfgPath := configPath(c, dir)
	cfg, err := node.LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	keys, err := nodeKeys(c, dir, createServeVault(c, dir, logger))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// After the first signal starts the graceful stop, a second one ends the
	// process at once (the default action).
	context.AfterFunc(ctx, stop)
	known := core.NewKnownNodes(filepath.Join(dir, knownNodesFile))
	known.Added = func(addr string, id core.NodeID) { // --join to a head given without its NodeID
		logger.Info("added node to known nodes", "node", id.String(), "addr", addr, "file", known.Path())
	}
	return node.Run(ctx, node.Options{
		Config:     cfg,
		ConfigPath: cfgPath,
		DataDir:    dir,
		Keys:       keys,
		Listen:     c.String("listen"),
		Join:       c.String("join"),
		KnownNodes: known,
		Version:    version(),
		Logger:     logger,
	})
}
