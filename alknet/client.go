package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
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
	via := c.String("via")
	relayOnly := c.Bool("relay-only")
	if len(resolvers) == 0 || network == core.NetworkAuto || via == "" || !relayOnly {
		cfg, err := node.LoadConfig(configPath(c, dir))
		if err != nil {
			return nil, err
		}
		if len(resolvers) == 0 {
			resolvers = cfg.DNS.Resolvers
		}
		if network == core.NetworkAuto {
			network = core.Network(cfg.Client.Network)
		}
		if via == "" {
			via = cfg.Client.Via
		}
		relayOnly = relayOnly || cfg.Client.RelayOnly
	}
	if via != "" {
		if _, _, err := core.ParseAddr(via); err != nil {
			return nil, cli.Exit("--via: want [NODEID@]HOST:PORT of a head: "+err.Error(), 2)
		}
	}
	if id, err := core.NodeIDFromPublicKey(key.Public().(ed25519.PublicKey)); err == nil {
		noteKey(id)
	}
	known := core.NewKnownNodes(filepath.Join(dir, knownNodesFile))
	// As OpenSSH's "Permanently added": on stderr, since stdout carries
	// data (pipe, call, --json).
	known.Added = func(addr string, id core.NodeID) {
		fmt.Fprintf(c.App.ErrWriter, "alknet: added node %s at %s to %s\n", id, addr, known.Path())
	}
	d := &core.Dialer{
		Key:        key,
		KnownNodes: known,
		Network:    network,
		Paths:      core.NewPathMemory(filepath.Join(dir, pathsFile)),
		Sessions:   core.NewSessionCache(filepath.Join(dir, sessionsFile), 0, nil),
		Via:        via,
		RelayOnly:  relayOnly,
	}
	for _, r := range resolvers {
		if err := node.CheckResolver(r); err != nil {
			return nil, cli.Exit("--resolver "+err.Error(), 2)
		}
	}
	if len(resolvers) > 0 {
		d.Resolve = resolveVia(d, resolvers)
	}
	if dht, err := clientDHT(c, dir); err != nil {
		return nil, err
	} else if dht != nil {
		d.Resolve = withDHT(d.Resolve, dht)
	}
	return d, nil
}

// dial connects to addr for alpn within dialTimeout.
func dial(ctx context.Context, d *core.Dialer, addr, alpn string) (core.Conn, error) {
	noteAddr(addr)
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := d.Dial(ctx, addr, alpn)
	if err != nil {
		return nil, err
	}
	// Which transport the dialer chose (the path choice may move bulk
	// work to TCP+TLS), for --log-level debug.
	conn.Logger().Debug("connected", "transport", transportOf(conn))
	return conn, nil
}

// transportOf names the transport under conn.
func transportOf(conn core.Conn) string {
	switch conn.Peer().RemoteAddr.(type) {
	case *net.UDPAddr:
		return "quic"
	case *net.TCPAddr:
		return "tcp+tls"
	default:
		return "other"
	}
}

// resolveVia returns a core.Dialer.Resolve that asks each resolver in turn
// for a node's signed self-description and turns it into routes: its
// addresses (host:port), then the heads it names as reachable through
// (relayed routes). The resolvers are dialled by d without resolution or
// relay of their own, so a resolver never needs a resolver.
func resolveVia(d *core.Dialer, resolvers []string) func(context.Context, core.NodeID) ([]core.Route, error) {
	plain := &core.Dialer{Key: d.Key, KnownNodes: d.KnownNodes, Network: d.Network, Logger: d.Logger}
	return func(ctx context.Context, id core.NodeID) ([]core.Route, error) {
		var errs []error
		for _, via := range resolvers {
			rec, err := dns.Resolve(ctx, id, via, plain, nil)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if out := recordRoutes(rec); len(out) > 0 {
				return out, nil
			}
			errs = append(errs, fmt.Errorf("%s: the record names no address", via))
		}
		return nil, errors.Join(errs...)
	}
}

// recordRoutes returns the routes a node's record names: its addresses,
// then its heads.
func recordRoutes(rec dns.NodeRecord) []core.Route {
	var out []core.Route
	if rec.Port != 0 {
		for _, a := range rec.Addrs {
			out = append(out, core.Route{Addr: net.JoinHostPort(a.String(), strconv.Itoa(int(rec.Port)))})
		}
	}
	for _, h := range rec.Via {
		out = append(out, core.Route{Via: h})
	}
	return out
}
