package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/config"
	"github.com/alkdev/alknet/dns"
)

// dnsConfig is the [dns] section. Zones are reloaded with the config file;
// everything else needs a restart.
type dnsConfig struct {
	// Listen is the classic UDP+TCP listener ("127.0.0.1:5353"). Default
	// off.
	Listen string `toml:"listen"`
	// Zones are the authoritative zones ([[dns.zones]]). Hot-reloaded.
	Zones []dns.ZoneConfig `toml:"zones"`
	// SignedOrigins serve signed packets under "<z32>.<origin>"; each must be
	// a zone's origin.
	SignedOrigins []string `toml:"signed_origins"`
	// StoreDir holds the signed packets. Default "<data-dir>/dns".
	StoreDir string `toml:"store_dir"`
	// MaxAge drops packets older than this. Default 48h; negative: never.
	MaxAge config.Duration `toml:"max_age"`
	// PublishScopes are the scopes an identity needs to publish over
	// alknet/dns. Default ["dns:publish"].
	PublishScopes []string `toml:"publish_scopes"`
	// PublishRate bounds publishes per minute per source. Default 30.
	PublishRate int `toml:"publish_rate"`
	// RequireIfMatch makes relay publishes need If-Match/If-None-Match.
	RequireIfMatch bool `toml:"require_if_match"`
	// MaxUDPBytes caps UDP answers. Default 1232.
	MaxUDPBytes int `toml:"max_udp_bytes"`
	// Homes are nodes ("<nodeid>@host:port") the self-description is also
	// published to.
	Homes []string `toml:"homes"`
	// Republish is the self-description's republish period. Default 1h.
	Republish config.Duration `toml:"republish"`
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
	if c.Republish.Duration < 0 {
		errs = append(errs, errors.New("dns.republish: negative"))
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
func buildDNS(n *node, alpns []string) (core.Handler, error) {
	c := n.cfg.DNS
	zones, err := dns.NewZones(c.Zones)
	if err != nil {
		return nil, fmt.Errorf("dns.zones: %w", err)
	}
	dir := c.StoreDir
	if dir == "" {
		dir = filepath.Join(n.dataDir, "dns")
	}
	store, err := dns.OpenStore(dns.StoreConfig{Dir: dir, MaxAge: c.MaxAge.Duration, Logger: n.logger})
	if err != nil {
		return nil, err
	}
	srv, err := dns.New(dns.Config{
		Zones:          zones,
		SignedOrigins:  c.SignedOrigins,
		Store:          store,
		PublishAccess:  core.AccessControl{AllScopes: c.PublishScopes},
		RequireIfMatch: c.RequireIfMatch,
		PublishRate:    c.PublishRate,
		MaxUDPBytes:    c.MaxUDPBytes,
		Logger:         n.logger,
	})
	if err != nil {
		return nil, err
	}
	n.onReload(func(next *fileConfig) {
		zs, err := dns.NewZones(next.DNS.Zones)
		if err != nil {
			n.logger.Error("dns: zones not reloaded; keeping the old ones", "err", err)
			return
		}
		srv.SetZones(zs)
	})
	if c.Listen != "" {
		cl, err := srv.ListenClassic(c.Listen)
		if err != nil {
			return nil, err
		}
		n.logger.Info("dns: classic listener", "addr", cl.Addr().String())
		n.background(cl.Serve)
	}
	pub, err := dns.NewPublisher(dns.PublisherConfig{
		Key: n.key, Info: func() dns.NodeInfo { return selfInfo(n, alpns) }, Local: store, Homes: c.Homes,
		Dialer: &core.Dialer{Key: n.key}, Interval: c.Republish.Duration, Logger: n.logger,
	})
	if err != nil {
		return nil, err
	}
	n.background(pub.Run)
	return srv, nil
}

// selfInfo is what the node publishes about itself: the ALPNs it serves,
// the port it listens on, and its address when that is a specific one.
func selfInfo(n *node, alpns []string) dns.NodeInfo {
	info := dns.NodeInfo{ALPNs: alpns, Version: version()}
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
