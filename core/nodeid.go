package core

import (
	"crypto/ed25519"
	"encoding/base32"
	"errors"
	"fmt"
	"unicode/utf8"
)

// zbase32 is the z-base-32 alphabet (as pkarr uses it), most significant bit
// first, no padding.
var zbase32 = base32.NewEncoding("ybndrfg8ejkmcpqxot1uwisza345h769").WithPadding(base32.NoPadding)

// NodeIDLen is the length of a NodeID's text form.
const NodeIDLen = 52

// NodeID is a node's identity: its Ed25519 public key. The text form is the
// z-base-32 encoding of the 32 key bytes (52 characters), which is also a
// valid DNS label. The zero value is "no node ID"; see [NodeID.IsZero].
type NodeID struct {
	key [32]byte
}

// NodeIDFromPublicKey returns the NodeID of an Ed25519 public key.
func NodeIDFromPublicKey(pub ed25519.PublicKey) (NodeID, error) {
	var id NodeID
	if len(pub) != ed25519.PublicKeySize {
		return id, fmt.Errorf("core: ed25519 public key is %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	copy(id.key[:], pub)
	if id.IsZero() {
		return NodeID{}, errZeroKey
	}
	return id, nil
}

// errZeroKey refuses the all-zero key: it is no one's key, and the zero
// NodeID stands for "no identity".
var errZeroKey = errors.New("core: the all-zero ed25519 key is not a node key")

// ParseNodeID parses the 52-character z-base-32 text form of a NodeID.
func ParseNodeID(s string) (NodeID, error) {
	var id NodeID
	if len(s) != NodeIDLen {
		return id, fmt.Errorf("core: node ID %q: length %d, want %d z-base-32 characters", Clip(s), len(s), NodeIDLen)
	}
	n, err := zbase32.Decode(id.key[:], []byte(s))
	// Re-encoding rejects non-zero trailing bits, so every NodeID has exactly
	// one text form.
	if err != nil || n != len(id.key) || zbase32.EncodeToString(id.key[:]) != s {
		return NodeID{}, fmt.Errorf("core: node ID %q: not z-base-32", Clip(s))
	}
	if id.IsZero() {
		return NodeID{}, fmt.Errorf("core: node ID %q: %w", Clip(s), errZeroKey)
	}
	return id, nil
}

// String returns the 52-character z-base-32 form, or "-" for the zero NodeID.
func (id NodeID) String() string {
	if id.IsZero() {
		return "-"
	}
	return zbase32.EncodeToString(id.key[:])
}

// ShortString returns the first 10 characters of the text form, for logs.
func (id NodeID) ShortString() string {
	s := id.String()
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

// IsZero reports whether id is the zero NodeID (no key).
func (id NodeID) IsZero() bool { return id == NodeID{} }

// PublicKey returns the Ed25519 public key.
func (id NodeID) PublicKey() ed25519.PublicKey {
	return append(ed25519.PublicKey(nil), id.key[:]...)
}

// MarshalText implements encoding.TextMarshaler.
func (id NodeID) MarshalText() ([]byte, error) {
	if id.IsZero() {
		return nil, errors.New("core: cannot marshal the zero node ID")
	}
	return []byte(id.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with [ParseNodeID].
func (id *NodeID) UnmarshalText(b []byte) error {
	v, err := ParseNodeID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Clip bounds untrusted text quoted in an error message: at most 64 bytes,
// cut at a character boundary, with "…" when cut. Modules quote what a
// peer or a config file sent through it, so hostile input cannot flood
// logs or replies.
func Clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
