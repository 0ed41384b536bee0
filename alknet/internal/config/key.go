package config

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/alkdev/alknet/core"
	"golang.org/x/crypto/ssh"
)

// Key is one of a peer's public keys: either a [core.NodeID] (52 z-base-32
// characters) or an OpenSSH authorized_keys line ("ssh-rsa AAAA… comment").
// An "ssh-ed25519" key is the same identity as the NodeID of its 32 bytes and
// is stored as that NodeID; other SSH key types are kept in SSH wire format.
// The zero Key is no key and fails validation.
type Key struct {
	node core.NodeID
	ssh  []byte // SSH wire format of a non-Ed25519 key
	text string // the form written in the file
}

// ParseKey parses a NodeID or a single OpenSSH authorized_keys line. Lines
// with options (from="…", command="…") and certificates are refused: the
// options would not be enforced.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, errors.New("empty key")
	}
	if !strings.ContainsAny(s, " \t") {
		id, err := core.ParseNodeID(s)
		if err != nil {
			return Key{}, err
		}
		return Key{node: id, text: s}, nil
	}
	pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return Key{}, fmt.Errorf("key %q: not a node ID or OpenSSH public key line: %w", core.Clip(s), err)
	}
	switch {
	case len(options) > 0:
		return Key{}, fmt.Errorf("key %q: authorized_keys options are not supported", core.Clip(s))
	case len(strings.TrimSpace(string(rest))) > 0:
		return Key{}, fmt.Errorf("key %q: more than one key; give one key per entry", core.Clip(s))
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return Key{}, fmt.Errorf("key %q: SSH certificates are not supported", core.Clip(s))
	}
	if pub.Type() == ssh.KeyAlgoED25519 {
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return Key{}, fmt.Errorf("key %q: unexpected ed25519 key type %T", core.Clip(s), pub)
		}
		ed, ok := cpk.CryptoPublicKey().(ed25519.PublicKey)
		if !ok {
			return Key{}, fmt.Errorf("key %q: unexpected ed25519 key type %T", core.Clip(s), cpk.CryptoPublicKey())
		}
		id, err := core.NodeIDFromPublicKey(ed)
		if err != nil {
			return Key{}, fmt.Errorf("key %q: %w", core.Clip(s), err)
		}
		return Key{node: id, text: s}, nil
	}
	return Key{ssh: pub.Marshal(), text: s}, nil
}

// KeyFromNodeID returns the Key of a NodeID.
func KeyFromNodeID(id core.NodeID) Key { return Key{node: id, text: id.String()} }

// NodeID returns the key's NodeID, and false for a non-Ed25519 SSH key or the
// zero Key.
func (k Key) NodeID() (core.NodeID, bool) { return k.node, !k.node.IsZero() }

// SSHKey returns a non-Ed25519 SSH key in SSH wire format, or nil.
func (k Key) SSHKey() []byte { return append([]byte(nil), k.ssh...) }

// IsZero reports whether k is the zero Key.
func (k Key) IsZero() bool { return k.node.IsZero() && len(k.ssh) == 0 }

// String returns the key as written in the file.
func (k Key) String() string { return k.text }

// MarshalText implements encoding.TextMarshaler; the zero Key is an error.
func (k Key) MarshalText() ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("cannot marshal the zero key")
	}
	return []byte(k.text), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with [ParseKey].
func (k *Key) UnmarshalText(b []byte) error {
	v, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}
