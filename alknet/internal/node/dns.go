package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
)

// dnsConfig is the [dns] section: the DNS service (doq, dot, alknet/dns);
// the user guide is docs/dns.md. Zones are reloaded with the config file;
// everything else needs a restart. TCP+TLS clients offering no ALPN reach
// dot only when node.no_alpn is "dot" (see docs/dns.md).
type dnsConfig struct {
	// Listen is the host:port of a classic UDP+TCP DNS listener, e.g.
	// "127.0.0.1:5353". Default "" (off).
	Listen string `toml:"listen"`
	// Zones are the authoritative zones. Dynamic: hot-reloaded. A zone that
	// fails to load keeps the old set and logs its file and line.
	Zones []dns.ZoneConfig `toml:"zones" reload:"dynamic"`
	// SignedOrigins are origins (each a zone's) under which signed packets
	// answer "<name>.<z32>.<origin>".
	SignedOrigins []string `toml:"signed_origins"`
	// StoreDir holds the signed packets, one file per key; absolute.
	// Default "<data-dir>/dns".
	StoreDir string `toml:"store_dir"`
	// MaxAge stops serving packets older than this. Default 48h; negative:
	// never.
	MaxAge config.Duration `toml:"max_age"`
	// PublishScopes are the scopes an identity needs to publish over
	// alknet/dns. Default ["dns:publish"].
	PublishScopes []string `toml:"publish_scopes"`
	// PublishRate bounds publishes per minute per source (the IP on the
	// relay, the node on alknet/dns). Default 30.
	PublishRate int `toml:"publish_rate"`
	// RelayMaxPackets bounds the signed packets the store holds for the
	// pkarr relay: a relay publish for a key not held yet is refused with
	// 507 Insufficient Storage once this many are held (updates of held
	// keys, alknet/dns publishes and the node's own still pass). At most
	// 4 KiB of disk and about 16 KiB of memory each. Default 10000;
	// negative: no limit.
	RelayMaxPackets int `toml:"relay_max_packets"`
	// RequireIfMatch makes relay publishes need If-Match or
	// If-None-Match: * (else 428). Default false.
	RequireIfMatch bool `toml:"require_if_match"`
	// MaxUDPBytes caps UDP answers, 512 to 4096. Default 1232.
	MaxUDPBytes int `toml:"max_udp_bytes"`
	// Homes are nodes ("<nodeid>@host:port") the self-description is also
	// published to. Default none.
	Homes []string `toml:"homes"`
	// Resolvers are asked for a node's signed self-description when a
	// client command is given a bare NodeID as its address: nodes
	// ("<nodeid>@host:port", asked over alknet/dns) or pkarr relays
	// ("https://host/pkarr"), tried in order. --resolver overrides them.
	// Default none: a bare NodeID is not an address.
	Resolvers []string `toml:"resolvers"`
	// Republish is the self-description's republish period. Default 1h.
	Republish config.Duration `toml:"republish"`
	// DHT puts the self-description on the BitTorrent Mainline DHT too
	// (BEP 44, as pkarr does; republished with it), and lets client
	// commands resolve a bare NodeID there when no resolver answers. It
	// talks to the public internet and tells it the node's addresses.
	// Default false.
	DHT bool `toml:"dht"`
	// DHTBootstrap are the host:port of DHT nodes to start from. Default
	// the public Mainline routers (router.bittorrent.com:6881,
	// dht.transmissionbt.com:6881, router.utorrent.com:6881,
	// dht.libtorrent.org:25401).
	DHTBootstrap []string `toml:"dht_bootstrap"`
	// DHTListen is the host:port of the node's DHT UDP socket. Default ""
	// (an ephemeral port on all addresses).
	DHTListen string `toml:"dht_listen"`
}

// maxDHTRepublish keeps the self-description on the DHT, whose nodes drop
// items about 2 h after their last put.
const maxDHTRepublish = 90 * time.Minute

// dhtConfig is the dns.DHTConfig of the section.
func (c *dnsConfig) dhtConfig(logger *slog.Logger) dns.DHTConfig {
	return dns.DHTConfig{Listen: c.DHTListen, Bootstrap: c.DHTBootstrap, Logger: logger}
}

// NewDHT opens the DHT of the [dns] section for a client command, or
// returns nil when dns.dht is off.
func (c *Config) NewDHT(logger *slog.Logger) (*dns.DHT, error) {
	if !c.DNS.DHT {
		return nil, nil
	}
	return dns.NewDHT(c.DNS.dhtConfig(logger))
}

// validate reports every problem of the section.
func (c *dnsConfig) validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("dns.listen: %q: %w", c.Listen, err))
		}
	}
	if c.StoreDir != "" && !filepath.IsAbs(c.StoreDir) {
		errs = append(errs, fmt.Errorf("dns.store_dir: %q is not an absolute path", c.StoreDir))
	}
	for i, h := range c.Homes {
		if id, _, err := core.ParseAddr(h); err != nil || id.IsZero() {
			errs = append(errs, fmt.Errorf("dns.homes[%d]: want <nodeid>@host:port", i))
		}
	}
	for i, r := range c.Resolvers {
		if err := CheckResolver(r); err != nil {
			errs = append(errs, fmt.Errorf("dns.resolvers[%d]: %w", i, err))
		}
	}
	if c.DHTListen != "" {
		if _, _, err := net.SplitHostPort(c.DHTListen); err != nil {
			errs = append(errs, fmt.Errorf("dns.dht_listen: %q: %w", c.DHTListen, err))
		}
	}
	for i, b := range c.DHTBootstrap {
		if _, _, err := net.SplitHostPort(b); err != nil {
			errs = append(errs, fmt.Errorf("dns.dht_bootstrap[%d]: %q: want host:port", i, b))
		}
	}
	if c.Republish.Duration < 0 {
		errs = append(errs, errors.New("dns.republish: negative"))
	}
	if c.DHT && c.Republish.Duration > maxDHTRepublish {
		errs = append(errs, fmt.Errorf("dns.republish: over %v with dns.dht on: DHT nodes drop items after about 2h", maxDHTRepublish))
	}
	if len(c.Zones) > 0 {
		if _, err := dns.NewZones(c.Zones); err != nil {
			errs = append(errs, fmt.Errorf("dns.zones: %w", err))
		}
	}
	return errors.Join(errs...)
}

// buildDNS makes the DNS server (doq, dot, alknet/dns), its classic
// listener if configured, and the self-description publisher.
func buildDNS(n *node, alpns []string) (*dns.Server, part, error) {
	c := n.cfg.DNS
	zones, err := dns.NewZones(c.Zones)
	if err != nil {
		return nil, part{}, fmt.Errorf("dns.zones: %w", err)
	}
	dir := c.StoreDir
	if dir == "" {
		dir = filepath.Join(n.dataDir, "dns")
	}
	store, err := dns.OpenStore(dns.StoreConfig{Dir: dir, MaxAge: c.MaxAge.Duration, Logger: n.logger})
	if err != nil {
		return nil, part{}, err
	}
	srv, err := dns.New(dns.Config{
		Zones:           zones,
		SignedOrigins:   c.SignedOrigins,
		Store:           store,
		PublishAccess:   core.AccessControl{AllScopes: c.PublishScopes},
		RequireIfMatch:  c.RequireIfMatch,
		PublishRate:     c.PublishRate,
		RelayMaxPackets: c.RelayMaxPackets,
		MaxUDPBytes:     c.MaxUDPBytes,
		Logger:          n.logger,
	})
	if err != nil {
		return nil, part{}, err
	}
	var dht *dns.DHT
	if c.DHT {
		// Its socket opens here; the publisher's task is its only user and
		// ends before the closers run.
		if dht, err = dns.NewDHT(c.dhtConfig(n.logger)); err != nil {
			return nil, part{}, fmt.Errorf("dns.dht: %w", err)
		}
		n.logger.Info("dns: dht", "addr", dht.Addr().String())
	}
	pub, err := dns.NewPublisher(dns.PublisherConfig{
		Key: n.key, Info: func() dns.NodeInfo { return selfInfo(n, alpns) }, Local: store, Homes: c.Homes,
		DHT: dht, Dialer: &core.Dialer{Key: n.key}, Interval: c.Republish.Duration, Logger: n.logger,
	})
	if err != nil {
		if dht != nil {
			dht.Close()
		}
		return nil, part{}, err
	}
	p := part{handler: srv, tasks: []func(context.Context) error{pub.Run}, reload: func(next *Config) {
		zs, err := dns.NewZones(next.DNS.Zones)
		if err != nil {
			n.logger.Error("dns: zones not reloaded; keeping the old ones", "err", err)
			return
		}
		srv.SetZones(zs)
	}}
	if dht != nil {
		p.closers = append(p.closers, dht.Close)
	}
	if c.Listen != "" {
		p.listeners = append(p.listeners, func() (func(context.Context) error, func() error, error) {
			cl, err := srv.ListenClassic(c.Listen)
			if err != nil {
				return nil, nil, err
			}
			n.logger.Info("dns: classic listener", "addr", cl.Addr().String())
			return cl.Serve, cl.Close, nil
		})
	}
	return srv, p, nil
}

// selfInfo is what the node publishes about itself: the ALPNs it serves,
// the port it listens on, and its address when that is a specific one.
func selfInfo(n *node, alpns []string) dns.NodeInfo {
	info := dns.NodeInfo{ALPNs: alpns, Version: n.version, Via: n.via}
	host, port, err := net.SplitHostPort(n.listenAddr())
	if err != nil {
		return info
	}
	if p, err := strconv.ParseUint(port, 10, 16); err == nil {
		info.Port = uint16(p)
	}
	if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
		info.Addrs = []netip.Addr{a}
	}
	return info
}

// CheckResolver accepts a pinned node address or an http(s) relay URL.
func CheckResolver(r string) error {
	if strings.HasPrefix(r, "https://") || strings.HasPrefix(r, "http://") {
		return nil
	}
	if id, _, err := core.ParseAddr(r); err != nil || id.IsZero() {
		return fmt.Errorf("%q: want <nodeid>@host:port or https://host/pkarr", r)
	}
	return nil
}
