package core

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"
)

// PeerEntry is a configured remote principal, known by one or more keys.
type PeerEntry struct {
	// ID is the peer's stable name; it survives key rotation.
	ID string
	// NodeIDs are the peer's Ed25519 node keys. An OpenSSH "ssh-ed25519" key
	// is stored here too: it is the same identity.
	NodeIDs []NodeID
	// SSHKeys are the peer's other SSH public keys (RSA, ECDSA), in SSH wire
	// format, for the ssh module.
	SSHKeys [][]byte
	// Scopes are granted to the peer.
	Scopes []string
	// Disabled peers are known but resolve to nothing; their live connections
	// are closed when a reload disables them.
	Disabled bool
}

// TokenEntry is a configured API token. Only its hash is known.
type TokenEntry struct {
	// Name is the token identity's ID.
	Name string
	// Hash is the SHA-256 of the token.
	Hash TokenHash
	// Scopes are granted to the token.
	Scopes []string
	// Expires is when the token stops working; zero means never.
	Expires time.Time
	// Disabled tokens resolve to nothing.
	Disabled bool
}

// Directory is an immutable snapshot of the peers and tokens a node knows.
// Build one with [NewDirectory]; replace it as a whole on reload.
type Directory struct {
	peers  []PeerEntry
	tokens []TokenEntry
	byNode map[NodeID]int // index into peers
}

// NewDirectory validates peers and tokens and returns a snapshot holding
// copies of them. It reports every problem at once: empty or duplicate IDs,
// a key claimed by two peers, malformed scopes, duplicate token names or
// hashes.
func NewDirectory(peers []PeerEntry, tokens []TokenEntry) (*Directory, error) {
	d := &Directory{byNode: make(map[NodeID]int)}
	var errs []error
	ids := make(map[string]bool)
	sshOwner := make(map[string]string) // SSH key wire form → peer ID
	for i, p := range peers {
		switch {
		case p.ID == "":
			errs = append(errs, fmt.Errorf("peer %d: empty id", i+1))
		case ids[p.ID]:
			errs = append(errs, fmt.Errorf("peer %q: duplicate id", p.ID))
		}
		ids[p.ID] = true
		if len(p.NodeIDs) == 0 && len(p.SSHKeys) == 0 {
			errs = append(errs, fmt.Errorf("peer %q: no keys", p.ID))
		}
		for _, n := range p.NodeIDs {
			if n.IsZero() {
				errs = append(errs, fmt.Errorf("peer %q: zero node ID", p.ID))
				continue
			}
			if j, dup := d.byNode[n]; dup {
				errs = append(errs, fmt.Errorf("peer %q: key %s already belongs to peer %q", p.ID, n.ShortString(), peers[j].ID))
				continue
			}
			d.byNode[n] = i
		}
		for _, k := range p.SSHKeys {
			if owner, dup := sshOwner[string(k)]; dup {
				errs = append(errs, fmt.Errorf("peer %q: an SSH key already belongs to peer %q", p.ID, owner))
				continue
			}
			sshOwner[string(k)] = p.ID
		}
		errs = append(errs, checkScopes("peer "+p.ID, p.Scopes)...)
		p.NodeIDs = slices.Clone(p.NodeIDs)
		p.SSHKeys = slices.Clone(p.SSHKeys)
		p.Scopes = cloneScopes(p.Scopes)
		d.peers = append(d.peers, p)
	}
	names := make(map[string]bool)
	for i, t := range tokens {
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("token %d: empty name", i+1))
		case names[t.Name]:
			errs = append(errs, fmt.Errorf("token %q: duplicate name", t.Name))
		}
		names[t.Name] = true
		if t.Hash.IsZero() {
			errs = append(errs, fmt.Errorf("token %q: no hash", t.Name))
		}
		for _, o := range d.tokens {
			if o.Hash.Equal(t.Hash) && !t.Hash.IsZero() {
				errs = append(errs, fmt.Errorf("token %q: same hash as token %q", t.Name, o.Name))
			}
		}
		errs = append(errs, checkScopes("token "+t.Name, t.Scopes)...)
		t.Scopes = cloneScopes(t.Scopes)
		d.tokens = append(d.tokens, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("core: directory: %w", err)
	}
	return d, nil
}

func checkScopes(owner string, scopes []string) []error {
	var errs []error
	for _, s := range scopes {
		if !ValidScope(s) {
			errs = append(errs, fmt.Errorf("%s: invalid scope %q", owner, Clip(s)))
		}
	}
	return errs
}

// Peers returns a copy of the configured peers.
func (d *Directory) Peers() []PeerEntry { return slices.Clone(d.peers) }

// Tokens returns a copy of the configured tokens.
func (d *Directory) Tokens() []TokenEntry { return slices.Clone(d.tokens) }

// IdentityProvider resolves credentials to identities. Handlers consult it
// for in-protocol credentials (bearer tokens, SSH keys); the endpoint
// consults it for TLS client keys. Lookups that find nothing are not errors.
type IdentityProvider interface {
	// ByNodeID resolves a node key presented in TLS or SSH.
	ByNodeID(id NodeID) (Identity, bool)
	// Disabled reports whether id is a known key that is disabled: its
	// connections are refused, not served as anonymous.
	Disabled(id NodeID) bool
	// ByToken resolves an API token.
	ByToken(token string) (Identity, bool)
	// Valid reports whether an identity resolved earlier still stands: its
	// credential still resolves, enabled and unexpired, to the same ID with
	// at least the same scopes.
	Valid(id Identity) bool
}

// LiveDirectory is the default [IdentityProvider]: it reads the current
// [Directory] on every lookup, so a reload applies to the next lookup. The
// zero value is not usable; use [NewLiveDirectory]. It is safe for concurrent
// use.
type LiveDirectory struct {
	dir   atomic.Pointer[Directory]
	clock func() time.Time
}

var _ IdentityProvider = (*LiveDirectory)(nil)

// NewLiveDirectory returns a provider serving d. clock tells token expiry;
// nil means time.Now.
func NewLiveDirectory(d *Directory, clock func() time.Time) *LiveDirectory {
	if clock == nil {
		clock = time.Now
	}
	if d == nil {
		d = &Directory{byNode: map[NodeID]int{}}
	}
	l := &LiveDirectory{clock: clock}
	l.dir.Store(d)
	return l
}

// Store swaps in a new snapshot atomically.
func (l *LiveDirectory) Store(d *Directory) { l.dir.Store(d) }

// Load returns the current snapshot.
func (l *LiveDirectory) Load() *Directory { return l.dir.Load() }

// ByNodeID implements [IdentityProvider].
func (l *LiveDirectory) ByNodeID(id NodeID) (Identity, bool) {
	d := l.dir.Load()
	i, ok := d.byNode[id]
	if !ok || d.peers[i].Disabled {
		return Identity{}, false
	}
	p := d.peers[i]
	return Identity{ID: p.ID, NodeID: id, Scopes: cloneScopes(p.Scopes)}, true
}

// Disabled implements [IdentityProvider].
func (l *LiveDirectory) Disabled(id NodeID) bool {
	d := l.dir.Load()
	i, ok := d.byNode[id]
	return ok && d.peers[i].Disabled
}

// BySSHKey resolves a non-Ed25519 SSH public key given in wire format.
// Ed25519 keys are looked up with ByNodeID.
func (l *LiveDirectory) BySSHKey(wire []byte) (Identity, bool) {
	d := l.dir.Load()
	for _, p := range d.peers {
		if p.Disabled {
			continue
		}
		for _, k := range p.SSHKeys {
			if bytes.Equal(k, wire) {
				return Identity{ID: p.ID, Scopes: cloneScopes(p.Scopes), sshKey: string(wire)}, true
			}
		}
	}
	return Identity{}, false
}

// ByToken implements [IdentityProvider]. Only tokens carrying [TokenPrefix]
// are considered; hashes are compared in constant time.
func (l *LiveDirectory) ByToken(token string) (Identity, bool) {
	if len(token) <= len(TokenPrefix) || token[:len(TokenPrefix)] != TokenPrefix {
		return Identity{}, false
	}
	t, ok := l.token(HashToken(token))
	if !ok {
		return Identity{}, false
	}
	return Identity{ID: t.Name, Scopes: cloneScopes(t.Scopes), token: t.Hash}, true
}

func (l *LiveDirectory) token(h TokenHash) (TokenEntry, bool) {
	d := l.dir.Load()
	now := l.clock()
	var found TokenEntry
	ok := false
	for _, t := range d.tokens {
		if t.Hash.Equal(h) {
			found, ok = t, true
		}
	}
	if !ok || found.Disabled || (!found.Expires.IsZero() && !now.Before(found.Expires)) {
		return TokenEntry{}, false
	}
	return found, true
}

// Valid implements [IdentityProvider]: the credential the identity came from
// must still resolve, enabled and unexpired, to the same ID with at least
// the scopes it had. A reload that removes a scope therefore ends the
// connections that relied on it.
func (l *LiveDirectory) Valid(id Identity) bool {
	var cur Identity
	var ok bool
	switch {
	case !id.token.IsZero():
		var t TokenEntry
		if t, ok = l.token(id.token); ok {
			cur = Identity{ID: t.Name, Scopes: t.Scopes}
		}
	case id.sshKey != "":
		cur, ok = l.BySSHKey([]byte(id.sshKey))
	case !id.NodeID.IsZero():
		cur, ok = l.ByNodeID(id.NodeID)
	}
	return ok && cur.ID == id.ID && coversScopes(cur.Scopes, id.Scopes)
}
