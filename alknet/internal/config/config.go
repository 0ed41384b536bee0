package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
)

// DefaultListen is the listen address used when node.listen is absent.
const DefaultListen = "[::]:4433"

// Core is the core sections of alknet.toml. Every key is optional; the zero
// value is a node with default settings that knows no peers and no tokens.
//
// The CLI's own top-level struct embeds Core (without a toml tag, so its
// sections stay at the top level) and adds the protocol modules' sections.
type Core struct {
	// Node is the [node] section. Static: a change needs a restart.
	Node Node `toml:"node"`
	// Limits is the [limits] section. Static.
	Limits Limits `toml:"limits"`
	// TLS is the [tls] section. Static.
	TLS TLS `toml:"tls"`
	// Services is the [services] section. Static.
	Services Services `toml:"services"`
	// Peers are the [[peers]] entries. Dynamic: hot-reloaded.
	Peers []Peer `toml:"peers" reload:"dynamic"`
	// Tokens are the [[tokens]] entries. Dynamic: hot-reloaded.
	Tokens []Token `toml:"tokens" reload:"dynamic"`
}

// Node is the [node] section.
type Node struct {
	// Listen is the host:port the node serves on, for QUIC (UDP) and TCP+TLS
	// alike; the --listen flag overrides it. Default "[::]:4433"
	// ([DefaultListen]).
	Listen string `toml:"listen"`
	// NoALPN names the service, by one of its ALPNs, that serves TCP+TLS
	// clients offering no ALPN at all (many DNS-over-TLS clients send none),
	// e.g. "dot". Default "": such clients are refused.
	NoALPN string `toml:"no_alpn"`
}

// ListenAddr returns Listen, or [DefaultListen] when it is empty.
func (n Node) ListenAddr() string {
	if n.Listen == "" {
		return DefaultListen
	}
	return n.Listen
}

// Limits is the [limits] section. A zero or absent key means the default in
// [core.DefaultLimits], given below. Durations are strings such as "500ms",
// "10s" or "1m30s"; one below its minimum is an error. A peer is "known"
// when its key or a token it presented resolved to an identity; any other
// peer is anonymous and gets the smaller budgets. docs/security.md explains
// what each bounds and what to tune.
type Limits struct {
	// HandshakeTimeout bounds the TLS handshake; over QUIC, the wait for the
	// client's next packet during the handshake, and the whole handshake to
	// twice that. Default 10s; at least 100ms.
	HandshakeTimeout Duration `toml:"handshake_timeout"`
	// IdleTimeout closes a QUIC connection silent for this long.
	// Default 60s; at least 1s.
	IdleTimeout Duration `toml:"idle_timeout"`
	// KeepAlive is the QUIC keep-alive period and TCP keep-alive interval.
	// Default 15s, at least 1s; negative disables keep-alives.
	KeepAlive Duration `toml:"keep_alive"`
	// AppIdleTimeout closes an anonymous peer's connection with nothing in
	// flight (no open stream, no byte moved, no request waiting) for this
	// long, keep-alives notwithstanding. Default 30s, at least 1s; negative
	// disables it.
	AppIdleTimeout Duration `toml:"app_idle_timeout"`
	// KnownAppIdleTimeout is the application idle timeout for known peers. Default
	// 10m, at least 1s; negative disables it.
	KnownAppIdleTimeout Duration `toml:"known_app_idle_timeout"`
	// MaxConns caps concurrent connections. Default 10000; at most 16777216 (1<<24).
	MaxConns int `toml:"max_conns"`
	// MaxConnsPerIP caps concurrent connections from one source: an IPv4
	// address, or an IPv6 prefix of ipv6_prefix_len bits. Default 100; at
	// most 16777216.
	MaxConnsPerIP int `toml:"max_conns_per_ip"`
	// IPv6PrefixLen is the IPv6 prefix length counted as one source by
	// max_conns_per_ip. Default 64; 1..128 (128: each address).
	IPv6PrefixLen int `toml:"ipv6_prefix_len"`
	// MaxStreamsPerConn caps concurrent peer-opened streams on one QUIC
	// connection. Default 100; at most 16777216.
	MaxStreamsPerConn int `toml:"max_streams_per_conn"`
	// MaxInflightBytes caps the bytes of frames being received at once over
	// all known peers' connections (call, msg and fs requests). Default
	// 268435456 (256 MiB).
	MaxInflightBytes int64 `toml:"max_inflight_bytes"`
	// MaxConnInflightBytes caps the bytes of frames being received at once
	// on one known peer's connection; a frame past it is refused, not the
	// node. Default 33554432 (32 MiB).
	MaxConnInflightBytes int64 `toml:"max_conn_inflight_bytes"`
	// MaxIdentityInflightBytes caps the bytes of frames being received at
	// once over all connections of one known identity, so that one peer,
	// however many connections it opens, cannot take max_inflight_bytes
	// from the others. Default 67108864 (64 MiB).
	MaxIdentityInflightBytes int64 `toml:"max_identity_inflight_bytes"`
	// MaxAnonInflightBytes caps the bytes of frames being received at once
	// over all anonymous connections. Default 16777216 (16 MiB).
	MaxAnonInflightBytes int64 `toml:"max_anon_inflight_bytes"`
	// MaxAnonConnInflightBytes caps the bytes of frames being received at
	// once on one anonymous connection. Default 262144 (256 KiB).
	MaxAnonConnInflightBytes int64 `toml:"max_anon_conn_inflight_bytes"`
	// FrameGrace is how long a frame that has started arriving may take
	// before frame_min_rate applies. Default 10s; at least 100ms.
	FrameGrace Duration `toml:"frame_grace"`
	// FrameMinRate is the average rate, in bytes per second, at which a
	// started frame must keep arriving after frame_grace; a slower one
	// ends its stream. Default 16384.
	FrameMinRate int64 `toml:"frame_min_rate"`
	// DrainTimeout is how long a shutdown waits for handlers before closing
	// what is left. Default 10s.
	DrainTimeout Duration `toml:"drain_timeout"`
}

// TLS is the [tls] section: the web certificate served on the standard ALPNs
// (h3, h2, http/1.1, doq, dot). alknet's own ALPNs always present the node
// certificate. Either give a certificate and key, or let ACME obtain one,
// not both; neither means the node makes a self-signed ECDSA P-256
// certificate, kept in "<data-dir>/web-cert.pem" and "web-key.pem", whose
// SHA-256 public-key pin `alknet id` prints (docs/http.md).
type TLS struct {
	// CertFile is a PEM certificate chain; it needs KeyFile and excludes
	// ACMEDomains. The node reads the pair again when either file changes
	// (a renewal), without a restart.
	CertFile string `toml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `toml:"key_file"`
	// ACMEDomains are the names to obtain a certificate for through ACME
	// (TLS-ALPN-01, so port 443 must reach the node; no wildcards); the
	// cache lives under "<data-dir>/acme".
	ACMEDomains []string `toml:"acme_domains"`
	// ACMEEmail is the contact address given to the ACME CA; it needs
	// ACMEDomains. Optional.
	ACMEEmail string `toml:"acme_email"`
	// ACMEDirectory is the ACME directory URL, https only. Default: Let's
	// Encrypt production.
	ACMEDirectory string `toml:"acme_directory"`
	// Names are extra host names or IP addresses for the self-signed
	// certificate, besides localhost, the host name and the listen
	// addresses; it excludes CertFile and ACMEDomains. Default none.
	Names []string `toml:"names"`
	// EarlyData lets a resumed QUIC client send its alknet/call requests
	// with its handshake (0-RTT); only replay-safe queries run before the
	// handshake completes (docs/protocols/core.md, "0-RTT"). False refuses
	// early data: every request waits for its handshake. Default true
	// (when nil).
	EarlyData *bool `toml:"early_data,omitempty"`
}

// Services is the [services] section.
type Services struct {
	// Disable names services not to run, e.g. "perf"; the CLI refuses
	// unknown names. Default: run all.
	Disable []string `toml:"disable"`
}

// Peer is one [[peers]] entry: a remote principal known by its keys. Repeat
// the table for each peer; "alknet peers add ID KEY --scope S" appends one
// and keeps the file's comments, and "alknet peers grant|revoke|disable|
// enable|rm ID" change or remove it in place.
type Peer struct {
	// ID is the peer's stable name; required and unique.
	ID string `toml:"id"`
	// Keys are the peer's NodeIDs and OpenSSH public key lines (no options,
	// no certificates). An ssh-ed25519 key is the same identity as the
	// NodeID of that key; RSA and ECDSA keys serve SSH only. A key belongs
	// to one peer. Required: at least one.
	Keys []Key `toml:"keys"`
	// Scopes are granted to the peer, e.g. "admin", "perf", "call:worker"
	// (the peer is a worker of this node: its operations are imported and
	// routed to), "call:route" (may route calls to workers and list them),
	// "ssh:connect"; a trailing "*" matches a prefix. Default none.
	Scopes []string `toml:"scopes,omitempty"`
	// Enabled is false to keep the peer known but refused; its live
	// connections close within 1 s. Default true (when nil).
	Enabled *bool `toml:"enabled,omitempty"`
}

// Token is one [[tokens]] entry: an API token ("alk_…") known by its hash,
// presented as a bearer credential. "alknet token create --name N --scope S
// --expires 720h" prints a new token once and appends its entry; "alknet
// token revoke N" removes it.
type Token struct {
	// Name is the token identity's ID; required and unique.
	Name string `toml:"name"`
	// Hash is "sha256:" and 64 hex digits, as printed when the token was
	// made; required.
	Hash core.TokenHash `toml:"hash"`
	// Scopes are granted to the token. Default none.
	Scopes []string `toml:"scopes,omitempty"`
	// Expires is when the token stops working, as a TOML offset date-time
	// (2027-01-01T00:00:00Z); a local date-time is taken in the node's time
	// zone. Default never (zero, absent).
	Expires time.Time `toml:"expires,omitzero"`
	// Enabled is false to refuse the token; live connections bound to it
	// close within 1 s. Default true (when nil).
	Enabled *bool `toml:"enabled,omitempty"`
}

// Validate reports every problem in c at once, each naming its field, e.g.
// "peers[2].keys[0]: …" or "limits.max_conns: …". Duplicate or empty IDs,
// token names and hashes, and malformed scopes are found by
// [core.NewDirectory].
func (c *Core) Validate() error {
	var errs []error
	if err := validateListen(c.Node.ListenAddr()); err != nil {
		errs = append(errs, fmt.Errorf("node.listen: %w", err))
	}
	if err := c.EndpointLimits().Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.TLS.validate()...)
	for i, p := range c.Peers {
		for j, k := range p.Keys {
			if k.IsZero() {
				errs = append(errs, fmt.Errorf("peers[%d].keys[%d]: empty key", i, j))
			}
		}
	}
	if _, err := c.Directory(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func validateListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a number 0..65535", addr, port)
	}
	return nil
}

func (t TLS) validate() []error {
	var errs []error
	if t.CertFile != "" && len(t.ACMEDomains) > 0 {
		errs = append(errs, errors.New("tls: cert_file and acme_domains are exclusive"))
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	for i, d := range t.ACMEDomains {
		if d == "" || strings.Contains(d, "*") {
			errs = append(errs, fmt.Errorf("tls.acme_domains[%d]: %q is not a host name (no wildcards)", i, core.Clip(d)))
		}
	}
	if len(t.Names) > 0 && (t.CertFile != "" || len(t.ACMEDomains) > 0) {
		errs = append(errs, errors.New("tls.names: only for the self-signed certificate; set without cert_file and acme_domains"))
	}
	for i, n := range t.Names {
		if n == "" || strings.ContainsAny(n, "*/: ") && net.ParseIP(n) == nil {
			errs = append(errs, fmt.Errorf("tls.names[%d]: %q is not a host name or IP address (no wildcards)", i, core.Clip(n)))
		}
	}
	if len(t.ACMEDomains) == 0 {
		if t.ACMEEmail != "" {
			errs = append(errs, errors.New("tls.acme_email: set without acme_domains"))
		}
		if t.ACMEDirectory != "" {
			errs = append(errs, errors.New("tls.acme_directory: set without acme_domains"))
		}
	}
	if t.ACMEDirectory != "" {
		if u, err := url.Parse(t.ACMEDirectory); err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("tls.acme_directory: %q is not an https URL", core.Clip(t.ACMEDirectory)))
		}
	}
	return errs
}

// Directory returns the dynamic part of c, the peers and tokens, as a
// snapshot for [core.LiveDirectory]. Its errors are those of
// [core.NewDirectory].
func (c *Core) Directory() (*core.Directory, error) {
	peers := make([]core.PeerEntry, len(c.Peers))
	for i, p := range c.Peers {
		peers[i] = p.entry()
	}
	tokens := make([]core.TokenEntry, len(c.Tokens))
	for i, t := range c.Tokens {
		tokens[i] = t.entry()
	}
	return core.NewDirectory(peers, tokens)
}

func (p Peer) entry() core.PeerEntry {
	e := core.PeerEntry{ID: p.ID, Scopes: p.Scopes, Disabled: !enabled(p.Enabled)}
	for _, k := range p.Keys {
		if id, ok := k.NodeID(); ok {
			e.NodeIDs = append(e.NodeIDs, id)
		} else if w := k.SSHKey(); w != nil {
			e.SSHKeys = append(e.SSHKeys, w)
		}
	}
	return e
}

func (t Token) entry() core.TokenEntry {
	return core.TokenEntry{
		Name:     t.Name,
		Hash:     t.Hash,
		Scopes:   t.Scopes,
		Expires:  t.Expires,
		Disabled: !enabled(t.Enabled),
	}
}

func enabled(b *bool) bool { return b == nil || *b }

// EndpointLimits returns the [limits] section as [core.Limits]. Zero fields
// stay zero: core reads them as [core.DefaultLimits].
func (c *Core) EndpointLimits() core.Limits {
	l := c.Limits
	return core.Limits{
		HandshakeTimeout:         l.HandshakeTimeout.Duration,
		IdleTimeout:              l.IdleTimeout.Duration,
		KeepAlive:                l.KeepAlive.Duration,
		AppIdleTimeout:           l.AppIdleTimeout.Duration,
		KnownAppIdleTimeout:      l.KnownAppIdleTimeout.Duration,
		MaxConns:                 l.MaxConns,
		MaxConnsPerIP:            l.MaxConnsPerIP,
		IPv6PrefixLen:            l.IPv6PrefixLen,
		MaxStreamsPerConn:        l.MaxStreamsPerConn,
		MaxInflightBytes:         l.MaxInflightBytes,
		MaxConnInflightBytes:     l.MaxConnInflightBytes,
		MaxIdentityInflightBytes: l.MaxIdentityInflightBytes,
		MaxAnonInflightBytes:     l.MaxAnonInflightBytes,
		MaxAnonConnInflightBytes: l.MaxAnonConnInflightBytes,
		FrameGrace:               l.FrameGrace.Duration,
		FrameMinRate:             l.FrameMinRate,
		DrainTimeout:             l.DrainTimeout.Duration,
	}
}
