package ssh

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"maps"
	"slices"
	"strings"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
)

// authInfo is what authentication found out about the client. It travels
// from the auth callback to the connection inside the Permissions the
// callback returned (ExtraData), so only the key that really authenticated
// counts.
type authInfo struct {
	id core.Identity
	// directory is set for identities resolved through Config.Identities;
	// they are bound to the core connection and revalidated with Valid.
	directory bool
	// ca is the wire form of the CA that signed the client's certificate.
	ca []byte
	// forceCommand replaces every command when hasForce is set.
	forceCommand string
	hasForce     bool
	// permitPTY and permitForward are false when a certificate lacks the
	// permit-pty or permit-port-forwarding extension.
	permitPTY, permitForward bool
}

// authKey is the ExtraData key of the *authInfo.
type authKey struct{}

// Extension names carried in Permissions.Extensions, for inspection only:
// the server itself reads the identity from ExtraData.
const (
	extIdentity = "alknet-identity@alkdev.org"
	extCA       = "alknet-ca@alkdev.org"
)

// sshKeyResolver is the optional lookup of non-Ed25519 SSH keys that
// *core.LiveDirectory has.
type sshKeyResolver interface {
	BySSHKey(wire []byte) (core.Identity, bool)
}

// critical options of user certificates the server acts on; x/crypto adds
// and enforces source-address itself.
const (
	optForceCommand = "force-command"
	optSourceAddr   = "source-address"
)

var (
	errUnknownKey   = errors.New("ssh: unknown public key")
	errNoConnect    = errors.New("ssh: identity lacks the ssh:connect scope")
	errBadPrincipal = errors.New("ssh: certificate principal is not a usable identity ID")
)

// publicKey is the PublicKeyCallback: it resolves a plain key through the
// identity provider and a certificate through the CAs of the current policy.
func (s *Server) publicKey(meta xssh.ConnMetadata, key xssh.PublicKey) (*xssh.Permissions, error) {
	if cert, ok := key.(*xssh.Certificate); ok {
		return s.certificate(meta, cert, s.policy())
	}
	id, ok := s.lookup(key)
	if !ok {
		return nil, errUnknownKey
	}
	if !id.HasScope(ScopeConnect) {
		return nil, errNoConnect
	}
	info := &authInfo{id: id, directory: true, permitPTY: true, permitForward: true}
	return info.permissions(nil), nil
}

// lookup resolves a plain public key to an identity.
func (s *Server) lookup(key xssh.PublicKey) (core.Identity, bool) {
	ids := s.cfg.Identities
	if ids == nil {
		return core.Identity{}, false
	}
	if key.Type() == xssh.KeyAlgoED25519 {
		ck, ok := key.(xssh.CryptoPublicKey)
		if !ok {
			return core.Identity{}, false
		}
		pub, ok := ck.CryptoPublicKey().(ed25519.PublicKey)
		if !ok {
			return core.Identity{}, false
		}
		nid, err := core.NodeIDFromPublicKey(pub)
		if err != nil {
			return core.Identity{}, false
		}
		return ids.ByNodeID(nid)
	}
	if r, ok := ids.(sshKeyResolver); ok {
		return r.BySSHKey(key.Marshal())
	}
	return core.Identity{}, false
}

// certificate checks a user certificate against the policy's CAs.
func (s *Server) certificate(meta xssh.ConnMetadata, cert *xssh.Certificate, pol *Policy) (*xssh.Permissions, error) {
	checker := xssh.CertChecker{
		SupportedCriticalOptions: []string{optForceCommand, optSourceAddr},
		IsUserAuthority:          func(k xssh.PublicKey) bool { return findCA(pol, k.Marshal()) != nil },
		Clock:                    s.cfg.Clock,
	}
	if _, err := checker.Authenticate(meta, cert); err != nil {
		return nil, err
	}
	ca := findCA(pol, cert.SignatureKey.Marshal())
	if ca == nil {
		return nil, errors.New("ssh: certificate signed by unrecognized authority")
	}
	user := meta.User()
	if !validID(user) {
		return nil, errBadPrincipal
	}
	id := core.Identity{ID: user, Scopes: slices.Clone(ca.Scopes)}
	if !id.HasScope(ScopeConnect) {
		return nil, errNoConnect
	}
	force, hasForce := cert.CriticalOptions[optForceCommand]
	_, pty := cert.Extensions["permit-pty"]
	_, fwd := cert.Extensions["permit-port-forwarding"]
	info := &authInfo{
		id:            id,
		ca:            ca.Key.Marshal(),
		forceCommand:  force,
		hasForce:      hasForce,
		permitPTY:     pty,
		permitForward: fwd,
	}
	// Keep the critical options: x/crypto enforces source-address on the
	// Permissions the callback returns.
	p := info.permissions(maps.Clone(cert.CriticalOptions))
	p.Extensions[extCA] = xssh.FingerprintSHA256(ca.Key)
	return p, nil
}

// permissions wraps info for the auth callback's answer.
func (info *authInfo) permissions(critical map[string]string) *xssh.Permissions {
	return &xssh.Permissions{
		CriticalOptions: critical,
		Extensions:      map[string]string{extIdentity: info.id.ID},
		ExtraData:       map[any]any{authKey{}: info},
	}
}

// findCA returns the policy's CA with the given key, or nil.
func findCA(pol *Policy, wire []byte) *CertAuthority {
	if pol == nil {
		return nil
	}
	for i := range pol.CertAuthorities {
		ca := &pol.CertAuthorities[i]
		if ca.Key == nil {
			continue
		}
		if _, isCert := ca.Key.(*xssh.Certificate); isCert {
			continue
		}
		if bytes.Equal(ca.Key.Marshal(), wire) {
			return ca
		}
	}
	return nil
}

// validID accepts identity IDs that log cleanly: printable, no spaces, at
// most 128 bytes.
func validID(s string) bool {
	return s != "" && len(s) <= 128 && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '"' || r == '\\'
	})
}

// stillValid reports whether an authenticated client may keep its
// connection: its credential still resolves to the same identity with at
// least the same scopes, or its CA is still trusted with those scopes.
func (s *Server) stillValid(info *authInfo) bool {
	if info.directory {
		return s.cfg.Identities != nil && s.cfg.Identities.Valid(info.id)
	}
	ca := findCA(s.policy(), info.ca)
	if ca == nil {
		return false
	}
	for _, sc := range info.id.Scopes {
		if !slices.Contains(ca.Scopes, sc) {
			return false
		}
	}
	return true
}
