package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/sftp"
	"github.com/alkdev/alknet/ssh"
)

// sshConfig is the [ssh] section: the SSH service (alknet/ssh); the user
// guide is docs/ssh.md. Everything is denied unless granted here and by the
// identity's scopes (ssh:connect, ssh:forward, ssh:remote-forward,
// ssh:shell). Everything but Policy is static.
type sshConfig struct {
	// Exec lets identities holding ssh:shell run commands, shells and PTYs
	// as the user the node runs as. Default false.
	Exec bool `toml:"exec"`
	// Shell runs commands and logins. Default "/bin/sh".
	Shell string `toml:"shell"`
	// TCPListen is the host:port of an extra plain-TCP SSH listener, beside
	// alknet/ssh; it takes [limits] max_conns_per_ip per IP address.
	// Default "" (off).
	TCPListen string `toml:"tcp_listen"`
	// MaxAuthTries is the failed logins allowed per connection. Default 6.
	MaxAuthTries int `toml:"max_auth_tries"`
	// HandshakeTimeout bounds the SSH handshake and login. Default 30s.
	HandshakeTimeout config.Duration `toml:"handshake_timeout"`
	// DialTimeout bounds resolving and connecting a forward. Default 10s.
	DialTimeout config.Duration `toml:"dial_timeout"`
	// MaxChannels bounds the open channels of one SSH connection. Default 64.
	MaxChannels int `toml:"max_channels"`
	// MaxRemoteForwards bounds the -R listeners of one SSH connection.
	// Default 16.
	MaxRemoteForwards int `toml:"max_remote_forwards"`
	// Policy is the [ssh.policy] section. Dynamic: hot-reloaded. A change
	// applies to the next login, channel or request.
	Policy sshPolicyConfig `toml:"policy" reload:"dynamic"`
}

// sshPolicyConfig is the [ssh.policy] section; see ssh.Policy. A rule is
// "allow|deny TARGET [principals=A,B]"; the first match wins.
type sshPolicyConfig struct {
	// Forward are the rules for -L, -D and -W destinations. The node
	// itself (loopback, 0.0.0.0, ::, its own addresses) is reached only
	// through a rule naming it ("allow self:5432", "allow 127.0.0.1:5432"),
	// never through "allow *" (docs/ssh.md). Default none: every
	// destination is denied.
	Forward []sshRule `toml:"forward"`
	// RemoteForward are the rules for -R bind addresses ("self" is not
	// accepted here). Default none: loopback only.
	RemoteForward []sshRule `toml:"remote_forward"`
	// StreamLocalConnect are the Unix socket paths (patterns) -L may reach.
	StreamLocalConnect []string `toml:"streamlocal_connect"`
	// StreamLocalListen are the Unix socket paths (patterns) -R may create.
	StreamLocalListen []string `toml:"streamlocal_listen"`
	// Env are the client variables passed to commands (names or PREFIX*).
	Env []string `toml:"env"`
	// CertAuthorities are trusted to sign user certificates: a
	// certificate they sign logs in as its principal.
	CertAuthorities []sshCA `toml:"cert_authorities"`
}

// sshCA is one [[ssh.policy.cert_authorities]] entry.
type sshCA struct {
	// Name identifies the CA in logs; unique when set. Optional.
	Name string `toml:"name"`
	// Key is the CA's public key as an authorized_keys line. Required.
	Key authorizedKey `toml:"key"`
	// Scopes are granted to every identity the CA certifies.
	Scopes []string `toml:"scopes"`
}

// sshRule is a forwarding rule written as text ("allow 10.0.0.0/8:443").
type sshRule struct{ ssh.Rule }

// UnmarshalText parses a rule with ssh.ParseRule.
func (r *sshRule) UnmarshalText(b []byte) error {
	rule, err := ssh.ParseRule(string(b))
	r.Rule = rule
	return err
}

// authorizedKey is an SSH public key written as an authorized_keys line.
type authorizedKey struct{ xssh.PublicKey }

// UnmarshalText parses an authorized_keys line.
func (k *authorizedKey) UnmarshalText(b []byte) error {
	key, _, _, _, err := xssh.ParseAuthorizedKey(b)
	if err != nil {
		return fmt.Errorf("want an OpenSSH public key line: %w", err)
	}
	k.PublicKey = key
	return nil
}

// validate reports every problem of the section.
func (c *sshConfig) validate() error {
	var errs []error
	if c.TCPListen != "" {
		if _, _, err := net.SplitHostPort(c.TCPListen); err != nil {
			errs = append(errs, fmt.Errorf("ssh.tcp_listen: %w", err))
		}
	}
	for name, v := range map[string]int{"max_auth_tries": c.MaxAuthTries, "max_channels": c.MaxChannels, "max_remote_forwards": c.MaxRemoteForwards} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("ssh.%s: %d is negative", name, v))
		}
	}
	if c.HandshakeTimeout.Duration < 0 || c.DialTimeout.Duration < 0 {
		errs = append(errs, errors.New("ssh: timeouts must not be negative"))
	}
	if err := c.Policy.policy().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// policy converts the section to the ssh module's Policy.
func (p *sshPolicyConfig) policy() *ssh.Policy {
	pol := &ssh.Policy{
		StreamLocalConnect: p.StreamLocalConnect,
		StreamLocalListen:  p.StreamLocalListen,
		Env:                p.Env,
	}
	for _, r := range p.Forward {
		pol.Forward = append(pol.Forward, r.Rule)
	}
	for _, r := range p.RemoteForward {
		pol.RemoteForward = append(pol.RemoteForward, r.Rule)
	}
	for _, ca := range p.CertAuthorities {
		pol.CertAuthorities = append(pol.CertAuthorities, ssh.CertAuthority{Name: ca.Name, Key: ca.Key.PublicKey, Scopes: ca.Scopes})
	}
	return pol
}

// buildSSH makes the SSH server: the node key as host key, the policy
// swapped on every reload, sftpSrv as the sftp subsystem and callH behind
// the alknet-call target. Either may be nil (its service is disabled): the
// subsystem or target is then refused.
func buildSSH(n *node, sftpSrv *sftp.Server, callH core.Handler) (*ssh.Server, part, error) {
	c := n.cfg.SSH
	var policy atomic.Pointer[ssh.Policy]
	policy.Store(c.Policy.policy())
	cfg := ssh.Config{
		HostKey:           n.key,
		Identities:        n.identities,
		Policy:            policy.Load,
		MaxAuthTries:      c.MaxAuthTries,
		HandshakeTimeout:  c.HandshakeTimeout.Duration,
		DialTimeout:       c.DialTimeout.Duration,
		MaxChannels:       c.MaxChannels,
		MaxRemoteForwards: c.MaxRemoteForwards,
		// The plain TCP listener takes the endpoint's per-IP cap.
		MaxConnsPerIP: n.cfg.EndpointLimits().MaxConnsPerIP,
		Logger:        n.logger,
	}
	if c.Exec {
		cfg.Exec = &ssh.Exec{Shell: c.Shell}
	}
	if sftpSrv != nil {
		cfg.Subsystems = map[string]ssh.SubsystemFunc{"sftp": sftpSrv.ServeStream}
	}
	if callH != nil {
		cfg.CallChannel = callH.Serve
	}
	srv, err := ssh.New(cfg)
	if err != nil {
		return nil, part{}, err
	}
	p := part{handler: srv, reload: func(next *Config) { policy.Store(next.SSH.Policy.policy()) }}
	if c.TCPListen != "" {
		p.listeners = append(p.listeners, func() (func(context.Context) error, func() error, error) {
			ln, err := net.Listen("tcp", c.TCPListen)
			if err != nil {
				return nil, nil, fmt.Errorf("ssh.tcp_listen: %w", err)
			}
			n.logger.Info("ssh: plain TCP listener", "addr", ln.Addr().String())
			return func(ctx context.Context) error { return srv.ServeListener(ctx, ln) }, ln.Close, nil
		})
	}
	return srv, p, nil
}
