package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/core"
)

// networkFlag selects the transport of client commands.
var networkFlag = &cli.StringFlag{
	Name: "network",
	Usage: "quic, tcp, or empty: QUIC first (TCP+TLS first for nodes where QUIC was bound by loss), " +
		"falling back to the other (default: [client] network)",
	EnvVars: []string{"ALKNET_NETWORK"},
}

// pathsFile, in the data dir, remembers per node the transport for bulk
// traffic (core.PathMemory).
const pathsFile = "paths"

// clientConfig is the [client] section: settings of the client commands
// (alknet perf, pipe, fs --node, forward, ...), not of the node.
type clientConfig struct {
	// Network is the transport of client commands: "quic", "tcp", or ""
	// (auto): QUIC first, falling back to TCP+TLS, except for nodes where a
	// QUIC connection was found bound by random loss (quic-go's NewReno),
	// which get TCP+TLS first for 30 minutes; the choice is remembered in
	// <data-dir>/paths (docs/protocols/core.md, "Transport choice"). The
	// --network flag and ALKNET_NETWORK override it. Default "".
	Network string `toml:"network"`
}

func (c *clientConfig) validate() error {
	switch core.Network(c.Network) {
	case core.NetworkAuto, core.NetworkQUIC, core.NetworkTCP:
		return nil
	}
	return fmt.Errorf("client.network %q: want quic, tcp or empty", c.Network)
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
	resolvers := c.StringSlice("resolver")
	if len(resolvers) == 0 || network == core.NetworkAuto {
		cfg, err := loadConfig(configPath(c, dir))
		if err != nil {
			return nil, err
		}
		if len(resolvers) == 0 {
			resolvers = cfg.DNS.Resolvers
		}
		if network == core.NetworkAuto {
			network = core.Network(cfg.Client.Network)
		}
	}
	d := &core.Dialer{
		Key:        key,
		KnownNodes: core.NewKnownNodes(filepath.Join(dir, knownNodesFile)),
		Network:    network,
		Paths:      core.NewPathMemory(filepath.Join(dir, pathsFile)),
		Sessions:   core.NewSessionCache(filepath.Join(dir, sessionsFile), 0, nil),
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
