package node

import (
	"errors"
	"fmt"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/dns"
	alkhttp "github.com/alkdev/alknet/http"
	"github.com/alkdev/alknet/ssh"
)

// httpConfig is the [http] section: the HTTP service (h3, h2, http/1.1,
// alknet/http) serving the call registry as REST, OpenAPI and MCP; the
// user guide is docs/http.md. Static: a change needs a restart.
type httpConfig struct {
	// MaxHeaderBytes caps request headers. Default 65536.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// MaxBodyBytes caps request bodies (413 above). Default 1048576.
	MaxBodyBytes int64 `toml:"max_body_bytes"`
	// ReadHeaderTimeout bounds reading headers. Default 10s.
	ReadHeaderTimeout config.Duration `toml:"read_header_timeout"`
	// ReadTimeout bounds reading a request. Default 30s.
	ReadTimeout config.Duration `toml:"read_timeout"`
	// WriteTimeout bounds writing a response (event streams lift it).
	// Default 60s.
	WriteTimeout config.Duration `toml:"write_timeout"`
	// IdleTimeout closes idle keep-alive connections. Default 120s.
	IdleTimeout config.Duration `toml:"idle_timeout"`
	// Rate is requests per second per identity (or IP when anonymous).
	// Default 50; negative: unlimited.
	Rate float64 `toml:"rate"`
	// Burst is the requests allowed at once above Rate. Default 100.
	Burst int `toml:"burst"`
	// MaxBatch caps the calls of one /v1/batch. Default 64.
	MaxBatch int `toml:"max_batch"`
	// Dashboard serves an HTML status page at GET / (NodeID, ALPNs,
	// connections, attached peers, recent auth rejects) to tokens and peers
	// with the admin scope, and with trust_loopback to clients on loopback
	// (docs/http.md); false makes / 404. Default true (when unset).
	Dashboard *bool `toml:"dashboard"`
	// TrustLoopback grants /metrics and the dashboard to clients on
	// loopback without a credential. Loopback is not authentication: every
	// local user and program, and a reverse proxy on the machine, gets in.
	// Connections a peer tunnels through this node's SSH forwarding (ssh
	// -L/-W, alknet forward, alknet socks) are told apart and never get
	// this trust; tunnels through other programs (OpenSSH's sshd, a proxy)
	// are not. When off, those pages need the admin scope (or the metrics
	// scope, for /metrics). On, a browser on the node's machine opens the
	// dashboard with no config; set it false on a machine with untrusted
	// local users or a reverse proxy that does not authenticate. Default
	// true (when unset).
	TrustLoopback *bool `toml:"trust_loopback"`
}

// validate reports every problem of the section.
func (c *httpConfig) validate() error {
	var errs []error
	if c.MaxHeaderBytes < 0 || c.MaxBodyBytes < 0 || c.Burst < 0 || c.MaxBatch < 0 {
		errs = append(errs, errors.New("http: max_header_bytes, max_body_bytes, burst and max_batch must not be negative"))
	}
	for name, d := range map[string]config.Duration{"read_header_timeout": c.ReadHeaderTimeout, "read_timeout": c.ReadTimeout, "write_timeout": c.WriteTimeout, "idle_timeout": c.IdleTimeout} {
		if d.Duration < 0 {
			errs = append(errs, fmt.Errorf("http.%s: %v is negative", name, d.Duration))
		}
	}
	return errors.Join(errs...)
}

// buildHTTP makes the HTTP server over the node's call registry, which
// must hold every operation by now; alpns are the node's, for the
// dashboard. sshSrv's forwarded connections never get loopback trust; dnsSrv
// serves DNS over HTTPS and the pkarr relay. Either may be nil.
func buildHTTP(n *node, alpns []string, sshSrv *ssh.Server, dnsSrv *dns.Server) (part, error) {
	c := n.cfg.HTTP
	cfg := alkhttp.Config{
		Registry:      n.calls,
		Peers:         n.peers,
		Identities:    n.identities,
		NodeID:        n.id.String(),
		Dashboard:     c.Dashboard == nil || *c.Dashboard,
		TrustLoopback: c.TrustLoopback == nil || *c.TrustLoopback,
		ALPNs:         alpns,
		Status:        n.status.dashboard,
		Limits: alkhttp.Limits{
			MaxHeaderBytes:    c.MaxHeaderBytes,
			MaxBodyBytes:      c.MaxBodyBytes,
			ReadHeaderTimeout: c.ReadHeaderTimeout.Duration,
			ReadTimeout:       c.ReadTimeout.Duration,
			WriteTimeout:      c.WriteTimeout.Duration,
			IdleTimeout:       c.IdleTimeout.Duration,
			Rate:              c.Rate,
			Burst:             c.Burst,
			MaxBatch:          c.MaxBatch,
		},
		Logger: n.logger,
	}
	if sshSrv != nil {
		cfg.Forwarded = sshSrv.Forwarded
	}
	srv, err := alkhttp.New(cfg)
	if err != nil {
		return part{}, err
	}
	if dnsSrv != nil {
		// DNS over HTTPS (RFC 8484) and the pkarr relay API.
		if err := srv.Mount("/dns-query", dnsSrv.DoHHandler()); err != nil {
			return part{}, err
		}
		if err := srv.Mount("/pkarr/", dnsSrv.RelayHandler()); err != nil {
			return part{}, err
		}
	}
	return part{handler: srv}, nil
}
