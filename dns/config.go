package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/core"
)

// ALPNs the module serves.
const (
	// ALPN is alknet's own: DoQ framing plus publish and fetch requests
	// for signed packets (docs/protocols/dns.md).
	ALPN = "alknet/dns"
	// ALPNDoQ is DNS over QUIC, RFC 9250.
	ALPNDoQ = "doq"
	// ALPNDoT is DNS over TLS, RFC 7858.
	ALPNDoT = "dot"
)

// ScopePublish is the scope that lets an identity publish signed packets
// over alknet/dns under the default [Config.PublishAccess].
const ScopePublish = "dns:publish"

// Defaults of [Config].
const (
	DefaultMaxUDPBytes = 1232
	DefaultIdleTimeout = 10 * time.Second
	DefaultMaxInflight = 64
	DefaultPublishRate = 30
	DefaultSignedTTL   = 300
	// DefaultRelayMaxPackets bounds the packets held when the relay
	// stores a new key: at most 40 MiB of files (a 4 KiB block each) and
	// about 160 MiB of memory if every packet is a full 1000 bytes of the
	// smallest records (some 13 KiB parsed); real ones take far less.
	DefaultRelayMaxPackets = 10000
	maxUDPBytesCeiling     = 4096
	defaultQueryTimeout    = 5 * time.Second
)

// Config configures a [Server]. The zero value serves nothing: every query
// is REFUSED.
type Config struct {
	// Zones are the authoritative zones served at start; nil: none.
	// Replace them later with [Server.SetZones].
	Zones *Zones
	// SignedOrigins are the origins under which signed packets are served:
	// "_alknet.<z32>.<origin>" is answered from key z32's latest packet.
	// Each must be the origin of a zone in Zones (its SOA answers negative
	// queries).
	SignedOrigins []string
	// Store holds signed packets. Nil: an in-memory store (lost on exit).
	Store *Store
	// PublishAccess decides who may publish over alknet/dns. The zero value
	// admits identities holding the scope "dns:publish".
	PublishAccess core.AccessControl
	// RequireIfMatch makes publishes without If-Match or If-None-Match fail
	// with 428 (compare-and-swap discipline).
	RequireIfMatch bool
	// PublishRate bounds publishes per minute per source (remote IP on the
	// relay, node on alknet/dns). Zero: DefaultPublishRate; negative: no
	// limit.
	PublishRate int
	// RelayMaxPackets bounds the packets the store holds as far as the
	// pkarr relay is concerned: a relay PUT for a key the store does not
	// hold yet is refused with 507 Insufficient Storage ([ErrStoreFull])
	// once the store holds this many (stale packets are dropped first).
	// Keys already held are always updated, and publishes over alknet/dns
	// (by identities holding the publish scope) and the node's own are
	// not counted against it. Zero: DefaultRelayMaxPackets; negative: no
	// limit.
	RelayMaxPackets int
	// MaxUDPBytes caps UDP answers, whatever larger size EDNS0 offers.
	// Zero: DefaultMaxUDPBytes (1232); range 512–4096.
	MaxUDPBytes int
	// IdleTimeout bounds the wait for a query on a stream, and the idle
	// time of a DoT connection. Zero: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxInflight bounds the queries answered at once on one DoT
	// connection. Zero: DefaultMaxInflight.
	MaxInflight int
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives the server's logs; nil means slog.Default().
	Logger *slog.Logger
}

// validate checks cfg and returns a copy with defaults filled.
func (cfg Config) validate() (Config, error) {
	var errs []error
	if cfg.MaxUDPBytes == 0 {
		cfg.MaxUDPBytes = DefaultMaxUDPBytes
	}
	if cfg.MaxUDPBytes < mdns.MinMsgSize || cfg.MaxUDPBytes > maxUDPBytesCeiling {
		errs = append(errs, fmt.Errorf("max_udp_bytes: %d is outside 512–4096", cfg.MaxUDPBytes))
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.IdleTimeout < 0 {
		errs = append(errs, errors.New("idle_timeout: must be positive"))
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.MaxInflight < 0 {
		errs = append(errs, errors.New("max_inflight: must be positive"))
	}
	if cfg.PublishRate == 0 {
		cfg.PublishRate = DefaultPublishRate
	}
	if cfg.RelayMaxPackets == 0 {
		cfg.RelayMaxPackets = DefaultRelayMaxPackets
	}
	origins := make([]string, 0, len(cfg.SignedOrigins))
	for _, o := range cfg.SignedOrigins {
		c := mdns.CanonicalName(o)
		if _, ok := cfg.Zones.Zone(c); !ok {
			errs = append(errs, fmt.Errorf("signed_origins: %q is not the origin of a served zone", o))
		}
		origins = append(origins, c)
	}
	cfg.SignedOrigins = origins
	if pa := cfg.PublishAccess; !pa.Public && len(pa.AllScopes) == 0 && len(pa.AnyScopes) == 0 {
		cfg.PublishAccess.AllScopes = []string{ScopePublish}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, fmt.Errorf("dns: config: %w", err)
	}
	return cfg, nil
}
