package ssh

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
)

// ALPN is the protocol this module serves.
const ALPN = "alknet/ssh"

// Scopes the server checks. An identity needs [ScopeConnect] to log in at
// all; each kind of channel needs its own scope on top.
const (
	// ScopeConnect admits an identity to SSH authentication.
	ScopeConnect = "ssh:connect"
	// ScopeForward allows direct-tcpip (ssh -L, -D, -W) and
	// direct-streamlocal channels, within the forwarding rules.
	ScopeForward = "ssh:forward"
	// ScopeRemoteForward allows tcpip-forward (ssh -R) and
	// streamlocal-forward, within the bind rules.
	ScopeRemoteForward = "ssh:remote-forward"
	// ScopeShell allows exec, shell and pty-req when [Config.Exec] is set.
	ScopeShell = "ssh:shell"
)

// CallTarget is the reserved direct-tcpip host name that connects a channel
// to this node's call protocol ([Config.CallChannel]) instead of dialling.
// Every other host name starting with "alknet-" is reserved and refused.
const CallTarget = "alknet-call"

// SubsystemFunc serves one SSH subsystem on a session channel (the CLI wires
// "sftp"). rw is the channel: reads return the client's data, writes go to
// the client, and Close ends the channel. id is the authenticated identity;
// the function decides what it may do (sftp checks sftp:read and
// sftp:write). ctx ends when the channel or the connection ends, or the
// server shuts down. The server sends exit-status 0 when the function
// returns nil and 1 otherwise, then closes the channel.
type SubsystemFunc func(ctx context.Context, rw io.ReadWriteCloser, id *core.Identity) error

// Config configures a [Server]. Only HostKey is required; every policy field
// left nil denies what it governs.
type Config struct {
	// HostKey is the node key, presented as the SSH host key, so OpenSSH
	// sees the key `alknet id` prints. Required.
	HostKey ed25519.PrivateKey

	// Identities resolves the public keys clients offer: an ssh-ed25519 key
	// by the NodeID of its 32 bytes (ByNodeID), any other key type by its
	// wire form when the provider also has a method
	// BySSHKey(wire []byte) (core.Identity, bool), as *core.LiveDirectory
	// does. Nil: plain keys are refused and only certificates
	// (Policy.CertAuthorities) log in.
	Identities core.IdentityProvider

	// Policy returns the policy in force. It is called on every
	// authentication, channel open and forward request, so swapping the
	// value it returns (an atomic.Pointer's Load, say) applies to the next
	// one. It must be safe for concurrent use and must not block. Nil, or a
	// nil result, denies every forward, trusts no certificate authority and
	// passes no environment variable.
	Policy func() *Policy

	// Exec lets identities holding [ScopeShell] run commands (exec), an
	// interactive shell (shell) and get a PTY, as the user the server runs
	// as. Nil refuses exec, shell and pty-req for everyone.
	Exec *Exec

	// Subsystems serves "subsystem" requests by name; nil, or a name not in
	// the map, refuses them. The functions authorize the identity
	// themselves.
	Subsystems map[string]SubsystemFunc

	// CallChannel serves a direct-tcpip channel to [CallTarget] (any port):
	// conn is a single-stream connection over the channel whose Peer carries
	// the SSH identity, so the call module's handler fits as is
	// (callHandler.Serve). Forwarding rules and ssh:forward do not apply;
	// the call protocol authorizes each operation. Nil refuses the target.
	CallChannel func(ctx context.Context, conn core.Conn) error

	// Dial opens the connections of direct-tcpip ("tcp", always to an
	// "ip:port" the rules allowed) and direct-streamlocal ("unix", a path)
	// channels. Nil uses a net.Dialer. DialTimeout bounds it either way.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)

	// LookupIP resolves the host names of forwarding requests, before the
	// rules are checked. Nil uses net.DefaultResolver.LookupNetIP(ctx,
	// "ip", host).
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)

	// MaxAuthTries is the number of failed authentication attempts allowed
	// on one SSH connection before it is closed. Default 6; negative is
	// invalid.
	MaxAuthTries int
	// HandshakeTimeout bounds the SSH handshake and authentication. Default
	// 30s; negative is invalid.
	HandshakeTimeout time.Duration
	// DialTimeout bounds resolving and dialling a forwarding target. Default
	// 10s; negative is invalid.
	DialTimeout time.Duration
	// MaxChannels bounds the channels open at once on one SSH connection
	// (sessions and forwards); more are refused with "resource shortage".
	// Default 64; negative is invalid.
	MaxChannels int
	// MaxRemoteForwards bounds the listeners (tcpip-forward and
	// streamlocal-forward) one SSH connection may hold. Default 16;
	// negative is invalid.
	MaxRemoteForwards int
	// MaxConnsPerIP caps the connections one IP address holds at once on
	// [Server.ServeListener] (QUIC and TCP+TLS connections are capped by
	// core). Default core.DefaultLimits().MaxConnsPerIP; negative is invalid.
	MaxConnsPerIP int

	// Clock tells the time for certificate validity; nil means time.Now.
	Clock func() time.Time

	// Logger receives the auth lines (core.LogAuth) and what happens outside
	// a connection. Use a logger without connection attributes. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Exec configures the commands a session runs.
type Exec struct {
	// Shell runs commands ("Shell -c COMMAND") and, as a login shell, the
	// interactive shell. Default "/bin/sh".
	Shell string
	// Env is the base environment of every command, as "KEY=value". Nil
	// gives HOME, USER, LOGNAME (of the user the server runs as), SHELL
	// and PATH=/usr/local/bin:/usr/bin:/bin. Either way the server adds
	// TERM (with a PTY), the variables the client sent that Policy.Env
	// allows, ALKNET_IDENTITY (the identity's ID) and, under a certificate's
	// force-command, SSH_ORIGINAL_COMMAND.
	Env []string
	// Dir is the working directory; default the home directory of the user
	// the server runs as, else "/".
	Dir string
}

// Policy is the part of the configuration that may change while the server
// runs: see [Config.Policy]. The zero value denies everything it governs.
type Policy struct {
	// Forward decides direct-tcpip channels (ssh -L, -D, -W) of identities
	// holding ssh:forward. Rules apply in order, the first match wins, and
	// no match denies. A host name is resolved first and each of its
	// addresses is judged on its own: the channel is allowed only if every
	// address is, so a name that resolves into a denied range is denied.
	// The addresses judged are the ones dialled, and the target is dialled
	// before the channel is confirmed. The addresses of this host
	// (loopback, unspecified, the node's own; see [Target]) are allowed
	// only by a rule that names this host: "allow *" does not reach them.
	Forward []Rule
	// RemoteForward decides the bind addresses of tcpip-forward (ssh -R)
	// for identities holding ssh:remote-forward, like Forward; an address
	// no rule matches is allowed if it is a loopback address and denied
	// otherwise. An empty bind address or "*" means every interface
	// (0.0.0.0 and ::), "localhost" its loopback addresses. Port 0 (the
	// server picks) matches only rules without a port.
	RemoteForward []Rule
	// StreamLocalConnect lists the Unix socket paths direct-streamlocal
	// channels may connect to (ssh -L to a socket), as filepath.Match
	// patterns of absolute paths; needs ssh:forward. Empty: none.
	StreamLocalConnect []string
	// StreamLocalListen lists the Unix socket paths streamlocal-forward may
	// listen on (ssh -R from a socket), as filepath.Match patterns of
	// absolute paths; needs ssh:remote-forward. Empty: none. The socket file
	// is removed when the forward ends.
	StreamLocalListen []string
	// Env lists the environment variables a client may set ("env"
	// requests, ssh -o SendEnv/SetEnv): exact names, or a prefix ending in
	// "*" ("LC_*"). Empty: none.
	Env []string
	// CertAuthorities are trusted to sign OpenSSH user certificates.
	CertAuthorities []CertAuthority
}

// CertAuthority is a certificate authority whose user certificates log in.
//
// A certificate maps to the identity whose ID is the login user name (ssh
// USER@host), which must be one of the certificate's principals; a
// certificate without principals is refused. The identity gets the CA's
// Scopes (it needs ssh:connect) and no NodeID. Its ID shares the namespace of
// peer IDs in forwarding rules, so trust a CA as much as the peer list.
//
// The certificate must be within its validity window; source-address is
// enforced; force-command replaces every command, shell and subsystem the
// client asks for (and needs Exec and ssh:shell like any command); a
// missing permit-pty extension refuses PTYs and a missing
// permit-port-forwarding refuses every forward; any other critical option
// refuses the certificate. Removing the CA from the policy closes the
// connections it admitted within a second.
type CertAuthority struct {
	// Name identifies the CA in logs and errors.
	Name string
	// Key is the CA's public key (not a certificate).
	Key xssh.PublicKey
	// Scopes are granted to every identity the CA certifies.
	Scopes []string
}

// Validate reports every problem of the policy at once, each naming its
// field. A server enforces an invalid policy as far as it can and fails
// closed where it cannot (a rule with an unknown action denies), so the
// configuration layer should call Validate before installing a policy.
func (p *Policy) Validate() error {
	if p == nil {
		return nil
	}
	var errs []error
	for i, r := range p.Forward {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("forward rule %d (%s): %w", i+1, r, err))
		}
	}
	for i, r := range p.RemoteForward {
		if err := r.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("remote-forward rule %d (%s): %w", i+1, r, err))
		} else if r.Target.Self {
			errs = append(errs, fmt.Errorf("remote-forward rule %d (%s): self is for forward rules; bind rules name addresses (127.0.0.1, ::1, 0.0.0.0, ::)", i+1, r))
		}
	}
	for _, pat := range p.StreamLocalConnect {
		if err := checkPathPattern(pat); err != nil {
			errs = append(errs, fmt.Errorf("streamlocal connect path %q: %w", pat, err))
		}
	}
	for _, pat := range p.StreamLocalListen {
		if err := checkPathPattern(pat); err != nil {
			errs = append(errs, fmt.Errorf("streamlocal listen path %q: %w", pat, err))
		}
	}
	for _, e := range p.Env {
		if err := checkEnvPattern(e); err != nil {
			errs = append(errs, fmt.Errorf("env %q: %w", e, err))
		}
	}
	names := map[string]bool{}
	for i, ca := range p.CertAuthorities {
		label := fmt.Sprintf("certificate authority %d", i+1)
		if ca.Name != "" {
			label = fmt.Sprintf("certificate authority %q", ca.Name)
			if names[ca.Name] {
				errs = append(errs, fmt.Errorf("%s: duplicate name", label))
			}
			names[ca.Name] = true
		}
		if ca.Key == nil {
			errs = append(errs, fmt.Errorf("%s: no key", label))
		} else if _, isCert := ca.Key.(*xssh.Certificate); isCert {
			errs = append(errs, fmt.Errorf("%s: key is a certificate, want the CA's public key", label))
		}
		for _, s := range ca.Scopes {
			if !core.ValidScope(s) {
				errs = append(errs, fmt.Errorf("%s: invalid scope %q", label, core.Clip(s)))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ssh: policy: %w", err)
	}
	return nil
}

func checkPathPattern(p string) error {
	if !filepath.IsAbs(p) {
		return errors.New("want an absolute path")
	}
	if _, err := filepath.Match(p, "/"); err != nil {
		return err
	}
	return nil
}

func checkEnvPattern(p string) error {
	name := strings.TrimSuffix(p, "*")
	if p == "" || strings.Contains(name, "*") || strings.ContainsAny(name, "= \t\n\x00") {
		return errors.New("want a variable name, or a prefix ending in *")
	}
	return nil
}

// envAllowed reports whether name matches one of the allow-list patterns.
func envAllowed(patterns []string, name string) bool {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return false
	}
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// pathAllowed reports whether the cleaned absolute path matches a pattern.
func pathAllowed(patterns []string, path string) bool {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return false
	}
	for _, p := range patterns {
		if ok, err := filepath.Match(p, path); err == nil && ok {
			return true
		}
	}
	return false
}

// Defaults.
const (
	defaultMaxAuthTries      = 6
	defaultHandshakeTimeout  = 30 * time.Second
	defaultDialTimeout       = 10 * time.Second
	defaultMaxChannels       = 64
	defaultMaxRemoteForwards = 16
	defaultShell             = "/bin/sh"
	defaultPath              = "/usr/local/bin:/usr/bin:/bin"
)

// validate checks cfg and returns a copy with the defaults filled in.
func (cfg Config) validate() (Config, error) {
	var errs []error
	if len(cfg.HostKey) != ed25519.PrivateKeySize {
		errs = append(errs, fmt.Errorf("HostKey: want an ed25519 private key (%d bytes), got %d bytes", ed25519.PrivateKeySize, len(cfg.HostKey)))
	}
	ints := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxAuthTries", &cfg.MaxAuthTries, defaultMaxAuthTries},
		{"MaxChannels", &cfg.MaxChannels, defaultMaxChannels},
		{"MaxRemoteForwards", &cfg.MaxRemoteForwards, defaultMaxRemoteForwards},
		{"MaxConnsPerIP", &cfg.MaxConnsPerIP, core.DefaultLimits().MaxConnsPerIP},
	}
	for _, f := range ints {
		switch {
		case *f.v < 0:
			errs = append(errs, fmt.Errorf("%s: %d is negative", f.name, *f.v))
		case *f.v == 0:
			*f.v = f.def
		}
	}
	durs := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"HandshakeTimeout", &cfg.HandshakeTimeout, defaultHandshakeTimeout},
		{"DialTimeout", &cfg.DialTimeout, defaultDialTimeout},
	}
	for _, f := range durs {
		switch {
		case *f.v < 0:
			errs = append(errs, fmt.Errorf("%s: %v is negative", f.name, *f.v))
		case *f.v == 0:
			*f.v = f.def
		}
	}
	for name, fn := range cfg.Subsystems {
		if name == "" || fn == nil {
			errs = append(errs, fmt.Errorf("%s: entry %q has no name or no function", "Subsystems", name))
		}
	}
	if cfg.Exec != nil {
		e := *cfg.Exec
		if e.Shell == "" {
			e.Shell = defaultShell
		}
		if !filepath.IsAbs(e.Shell) {
			errs = append(errs, fmt.Errorf("Exec.Shell: %q is not an absolute path", e.Shell))
		}
		for _, kv := range e.Env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				errs = append(errs, fmt.Errorf("Exec.Env: %q is not KEY=value", core.Clip(kv)))
			}
		}
		if e.Dir != "" && !filepath.IsAbs(e.Dir) {
			errs = append(errs, fmt.Errorf("Exec.Dir: %q is not an absolute path", e.Dir))
		}
		e.Env = append([]string(nil), e.Env...)
		cfg.Exec = &e
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.LookupIP == nil {
		cfg.LookupIP = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	subs := make(map[string]SubsystemFunc, len(cfg.Subsystems))
	for k, v := range cfg.Subsystems {
		subs[k] = v
	}
	cfg.Subsystems = subs
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("ssh: config: %w", err)
	}
	return cfg, nil
}
