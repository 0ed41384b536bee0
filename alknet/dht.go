package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
)

// dhtFlag turns on resolution on the Mainline DHT for client commands.
var dhtFlag = &cli.BoolFlag{
	Name: "dht",
	Usage: "for client commands: also look up a node given by NodeID alone on the BitTorrent Mainline DHT " +
		"(public internet; default [dns] dht)",
	EnvVars: []string{"ALKNET_DHT"},
}

// dhtResolveTimeout bounds a client's DHT lookup, leaving the rest of
// dialTimeout to the dial.
const dhtResolveTimeout = 10 * time.Second

// nodeRecordSource returns verified self-descriptions of nodes.
type nodeRecordSource func(context.Context, core.NodeID) (dns.NodeRecord, error)

// clientDHT returns the Mainline DHT as a source of verified records when
// --dht or [dns] dht is on, else nil. Each lookup opens a DHT socket,
// bootstraps from [dns] dht_bootstrap, and closes it: a client command
// makes one or two.
func clientDHT(c *cli.Context, dir string) (nodeRecordSource, error) {
	cfg, err := node.LoadConfig(configPath(c, dir))
	if err != nil {
		return nil, err
	}
	if !c.Bool("dht") && !cfg.DNS.DHT {
		return nil, nil
	}
	cfg.DNS.DHT = true // LoadConfig checked the rest of the section
	logger, err := newLogger(c)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, id core.NodeID) (dns.NodeRecord, error) {
		d, err := cfg.NewDHT(logger)
		if err != nil {
			return dns.NodeRecord{}, err
		}
		defer d.Close()
		ctx, cancel := context.WithTimeout(ctx, dhtResolveTimeout)
		defer cancel()
		return d.ResolveNode(ctx, id)
	}, nil
}

// withDHT returns a core.Dialer.Resolve that tries prev (the resolvers, if
// any) and then the DHT.
func withDHT(prev func(context.Context, core.NodeID) ([]core.Route, error), dht nodeRecordSource) func(context.Context, core.NodeID) ([]core.Route, error) {
	return func(ctx context.Context, id core.NodeID) ([]core.Route, error) {
		var errs []error
		if prev != nil {
			routes, err := prev(ctx, id)
			if err == nil {
				return routes, nil
			}
			errs = append(errs, err)
		}
		rec, err := dht(ctx, id)
		if err != nil {
			return nil, errors.Join(append(errs, err)...)
		}
		routes := recordRoutes(rec)
		if len(routes) == 0 {
			return nil, errors.Join(append(errs, fmt.Errorf("the DHT record of %s names no address and no head", id.ShortString()))...)
		}
		return routes, nil
	}
}
