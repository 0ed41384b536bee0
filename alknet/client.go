package main

import (
	"context"
	"crypto/ed25519"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/core"
)

// networkFlag selects the transport of client commands.
var networkFlag = &cli.StringFlag{
	Name:  "network",
	Usage: "quic, tcp, or empty to try QUIC then fall back to TCP+TLS",
}

// sessionsFile, in the data dir, keeps the TLS session tickets nodes gave
// this client, so that the next command resumes instead of making a full
// handshake (see core.SessionCache). It is key material, like the vault.
const sessionsFile = "tls_sessions"

// dialTimeout bounds a client command's connection set-up.
const dialTimeout = 15 * time.Second

// dialer returns a Dialer presenting the node key of the data dir, checking
// unpinned addresses against the data dir's known_nodes file.
func dialer(c *cli.Context) (*core.Dialer, error) {
	dir, err := dataDir(c)
	if err != nil {
		return nil, err
	}
	key, err := nodeKey(c, dir)
	if err != nil {
		return nil, err
	}
	return dialerWith(c, dir, key)
}

// dialerWith is dialer with the node key already at hand.
func dialerWith(c *cli.Context, dir string, key ed25519.PrivateKey) (*core.Dialer, error) {
	network := core.Network(c.String("network"))
	switch network {
	case core.NetworkAuto, core.NetworkQUIC, core.NetworkTCP:
	default:
		return nil, cli.Exit("--network: want quic or tcp", 2)
	}
	d := &core.Dialer{
		Key:        key,
		KnownNodes: core.NewKnownNodes(filepath.Join(dir, knownNodesFile)),
		Network:    network,
		Sessions:   core.NewSessionCache(filepath.Join(dir, sessionsFile), 0, nil),
	}
	resolvers := c.StringSlice("resolver")
	if len(resolvers) == 0 {
		cfg, err := loadConfig(configPath(c, dir))
		if err != nil {
			return nil, err
		}
		resolvers = cfg.DNS.Resolvers
	}
	for _, r := range resolvers {
		if err := checkResolver(r); err != nil {
			return nil, cli.Exit("--resolver "+err.Error(), 2)
		}
	}
	if len(resolvers) > 0 {
		d.Resolve = resolveVia(d, resolvers)
	}
	return d, nil
}

// dial connects to addr for alpn within dialTimeout.
func dial(ctx context.Context, d *core.Dialer, addr, alpn string) (core.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	return d.Dial(ctx, addr, alpn)
}
