package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
)

var resolveCommand = &cli.Command{
	Name:      "resolve",
	Usage:     "fetch and verify a node's signed self-description",
	ArgsUsage: "NODEID",
	Description: "Asks each --resolver in turn (default: [dns] resolvers) for NODEID's signed\n" +
		"packet, checks its signature, and prints the node's ALPNs, port, addresses,\n" +
		"the heads it is reachable through (via) and version. A resolver is an alknet\n" +
		"address (NODEID@HOST:PORT, asked over alknet/dns) or a pkarr relay URL\n" +
		"(https://HOST/pkarr). --dht (or [dns] dht) asks the BitTorrent Mainline DHT,\n" +
		"after the resolvers.",
	Flags: withCommon(
		networkFlag,
		&cli.BoolFlag{Name: "json", Usage: "print the record as one JSON object"},
	),
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return cli.Exit("alknet resolve: want NODEID", 2)
		}
		id, err := core.ParseNodeID(c.Args().First())
		if err != nil {
			return cli.Exit("alknet resolve: "+err.Error(), 2)
		}
		rec, err := resolveRecord(c, id)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			addrs := make([]string, len(rec.Addrs))
			for i, a := range rec.Addrs {
				addrs[i] = a.String()
			}
			return printJSON(c, resolveJSON{NodeID: rec.NodeID.String(), ALPNs: orEmpty(rec.ALPNs), Port: rec.Port,
				Addrs: addrs, Via: orEmpty(rec.Via), Version: rec.Version, Signed: rec.Time.UTC()})
		}
		w := c.App.Writer
		fmt.Fprintf(w, "node     %s\n", rec.NodeID)
		fmt.Fprintf(w, "alpns    %s\n", strings.Join(rec.ALPNs, " "))
		fmt.Fprintf(w, "port     %d\n", rec.Port)
		for _, a := range rec.Addrs {
			fmt.Fprintf(w, "address  %s\n", a)
		}
		for _, v := range rec.Via {
			fmt.Fprintf(w, "via      %s\n", v)
		}
		fmt.Fprintf(w, "version  %s\n", rec.Version)
		fmt.Fprintf(w, "signed   %s\n", rec.Time.UTC().Format("2006-01-02T15:04:05.000000Z"))
		return nil
	},
}

// resolveRecord asks each --resolver (default [dns] resolvers) in turn,
// then the DHT when --dht or [dns] dht is on.
func resolveRecord(c *cli.Context, id core.NodeID) (dns.NodeRecord, error) {
	dir, err := dataDir(c)
	if err != nil {
		return dns.NodeRecord{}, err
	}
	dht, err := clientDHT(c, dir)
	if err != nil {
		return dns.NodeRecord{}, err
	}
	resolvers := c.StringSlice("resolver")
	if len(resolvers) == 0 {
		cfg, err := node.LoadConfig(configPath(c, dir))
		if err != nil {
			return dns.NodeRecord{}, err
		}
		resolvers = cfg.DNS.Resolvers
	}
	if len(resolvers) == 0 && dht == nil {
		return dns.NodeRecord{}, cli.Exit("alknet resolve: no resolver: give --resolver NODEID@HOST:PORT or https://HOST/pkarr, "+
			"set [dns] resolvers, or ask the Mainline DHT with --dht", 2)
	}
	ctx, cancel := context.WithTimeout(c.Context, dialTimeout)
	defer cancel()
	var errs []error
	if len(resolvers) > 0 {
		d, err := dialer(c)
		if err != nil {
			return dns.NodeRecord{}, err
		}
		for _, r := range resolvers {
			rec, err := dns.Resolve(ctx, id, r, d, nil)
			var se *dns.StatusError
			if errors.As(err, &se) && se.Status == http.StatusNotFound {
				err = fmt.Errorf("%s has no signed record of node %s: that node has not published to it "+
					"(a node publishes its own record to its resolvers and with `alknet dns publish --to`)", r, id)
			}
			if err == nil {
				return rec, nil
			}
			errs = append(errs, err)
		}
	}
	if dht == nil {
		return dns.NodeRecord{}, errors.Join(errs...)
	}
	rec, err := dht(ctx, id)
	if errors.Is(err, dns.ErrDHTNotFound) {
		err = fmt.Errorf("the DHT holds no signed record of node %s: that node does not publish there "+
			"(a node does with [dns] dht = true) or its record expired: %w", id, err)
	}
	if err != nil {
		return dns.NodeRecord{}, errors.Join(append(errs, err)...)
	}
	return rec, nil
}

// resolveJSON is `resolve --json`'s object.
type resolveJSON struct {
	NodeID  string    `json:"nodeId"`
	ALPNs   []string  `json:"alpns"`
	Port    uint16    `json:"port"`
	Addrs   []string  `json:"addrs"`
	Via     []string  `json:"via"`
	Version string    `json:"version"`
	Signed  time.Time `json:"signed"`
}

var dnsCommand = &cli.Command{
	Name:  "dns",
	Usage: "signed DNS records of this node",
	Subcommands: []*cli.Command{{
		Name:      "publish",
		Usage:     "sign a zone file with the node key and publish it",
		ArgsUsage: "--zone FILE --to ADDR|URL [--to …]",
		Description: "Reads FILE (RFC 1035; names relative to the node key, \"@\" is the key itself),\n" +
			"signs its records as a pkarr packet with the data dir's node key, and publishes it\n" +
			"to each --to: a node over alknet/dns ([NODEID@]HOST:PORT, needing the dns:publish\n" +
			"scope there) or a pkarr relay (https://HOST/pkarr).",
		Flags: withCommon(
			&cli.StringFlag{Name: "zone", Usage: "zone file to sign", Required: true},
			&cli.StringSliceFlag{Name: "to", Usage: "node address or relay URL to publish to", Required: true},
			networkFlag,
		),
		Action: dnsPublish,
	}},
}

func dnsPublish(c *cli.Context) error {
	d, err := dialer(c)
	if err != nil {
		return err
	}
	id := node.ID(d.Key)
	f, err := os.Open(c.String("zone"))
	if err != nil {
		return err
	}
	defer f.Close()
	records, err := dns.ParseRecords(f, id.String()+".", c.String("zone"))
	if err != nil {
		return err
	}
	p, err := dns.Sign(d.Key, time.Now(), records)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, dialTimeout)
	defer cancel()
	for _, to := range c.StringSlice("to") {
		if strings.HasPrefix(to, "https://") || strings.HasPrefix(to, "http://") {
			err = dns.PublishRelay(ctx, nil, to, p)
		} else {
			err = dns.Publish(ctx, d, to, p)
		}
		var se *dns.StatusError
		if errors.As(err, &se) && se.Status == http.StatusForbidden {
			me := id.String()
			return fmt.Errorf("%s refused the publish: it needs your key %s with the dns:publish scope: "+
				"on that node run `alknet peers add NAME %s --scope dns:publish` (or, if that key is a peer already, "+
				"`alknet peers grant ID dns:publish`)", to, me, me)
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(c.App.Writer, "published %d records for %s\n", len(p.Records()), id)
	return nil
}
