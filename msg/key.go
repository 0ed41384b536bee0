package msg

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/alkdev/alknet/core"
)

// KeyPath is the vault path (SLIP-0010, hardened) whose 32-byte private key
// seed, clamped, is a node's X25519 messaging key.
const KeyPath = "m/74'/3'/0'"

// KeySize is the length of an X25519 key.
const KeySize = 32

// NewKey returns the X25519 messaging key for a 32-byte seed (the private
// key seed derived at [KeyPath]). The seed is clamped as RFC 7748 requires
// before use; the caller's slice is not changed.
func NewKey(seed []byte) (*ecdh.PrivateKey, error) {
	if len(seed) != KeySize {
		return nil, fmt.Errorf("msg: messaging key seed is %d bytes, want %d", len(seed), KeySize)
	}
	var k [KeySize]byte
	copy(k[:], seed)
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
	defer clear(k[:])
	return ecdh.X25519().NewPrivateKey(k[:])
}

// keyRecordPrefix starts the text form of a KeyRecord.
const keyRecordPrefix = "alkmsgkey1:"

// keyRecordContext separates key-record signatures from every other
// signature made with a node key.
const keyRecordContext = "alknet/msg key record v1\x00"

// KeyRecord binds a messaging key to a node: the node key signs it, so a
// sender can take the record from anyone (a home node, a DNS record) and
// still know the key is the recipient's.
type KeyRecord struct {
	// Node is the node the key belongs to.
	Node core.NodeID
	// Key is the X25519 messaging public key.
	Key *ecdh.PublicKey
	// Signature is the node key's Ed25519 signature over the context string,
	// the node ID and the key.
	Signature []byte
}

// SignKeyRecord returns the record of key signed by the node key nodeKey.
func SignKeyRecord(nodeKey ed25519.PrivateKey, key *ecdh.PublicKey) (KeyRecord, error) {
	id, err := core.NodeIDFromPublicKey(nodeKey.Public().(ed25519.PublicKey))
	if err != nil {
		return KeyRecord{}, fmt.Errorf("msg: %w", err)
	}
	r := KeyRecord{Node: id, Key: key}
	r.Signature = ed25519.Sign(nodeKey, r.signed())
	return r, nil
}

func (r KeyRecord) signed() []byte {
	b := make([]byte, 0, len(keyRecordContext)+2*KeySize)
	b = append(b, keyRecordContext...)
	b = append(b, r.Node.PublicKey()...)
	return append(b, r.Key.Bytes()...)
}

// Verify checks the record's signature against its node ID.
func (r KeyRecord) Verify() error {
	if r.Node.IsZero() || r.Key == nil {
		return errors.New("msg: key record: empty")
	}
	if !ed25519.Verify(r.Node.PublicKey(), r.signed(), r.Signature) {
		return errors.New("msg: key record: bad signature")
	}
	return nil
}

// MarshalBinary encodes the record: node ID, key, signature (128 bytes).
func (r KeyRecord) MarshalBinary() ([]byte, error) {
	if r.Key == nil || len(r.Signature) != ed25519.SignatureSize {
		return nil, errors.New("msg: key record: incomplete")
	}
	b := append([]byte{}, r.Node.PublicKey()...)
	b = append(b, r.Key.Bytes()...)
	return append(b, r.Signature...), nil
}

// ParseKeyRecord decodes and verifies a record from MarshalBinary's form.
func ParseKeyRecord(b []byte) (KeyRecord, error) {
	if len(b) != 2*KeySize+ed25519.SignatureSize {
		return KeyRecord{}, fmt.Errorf("msg: key record: %d bytes, want %d", len(b), 2*KeySize+ed25519.SignatureSize)
	}
	id, err := core.NodeIDFromPublicKey(ed25519.PublicKey(b[:KeySize]))
	if err != nil {
		return KeyRecord{}, fmt.Errorf("msg: key record: %w", err)
	}
	key, err := ecdh.X25519().NewPublicKey(b[KeySize : 2*KeySize])
	if err != nil {
		return KeyRecord{}, fmt.Errorf("msg: key record: %w", err)
	}
	r := KeyRecord{Node: id, Key: key, Signature: append([]byte{}, b[2*KeySize:]...)}
	return r, r.Verify()
}

// String returns the text form "alkmsgkey1:" + base64url of MarshalBinary.
func (r KeyRecord) String() string {
	b, err := r.MarshalBinary()
	if err != nil {
		return keyRecordPrefix
	}
	return keyRecordPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseKeyRecordText decodes and verifies the text form made by String.
func ParseKeyRecordText(s string) (KeyRecord, error) {
	rest, ok := strings.CutPrefix(s, keyRecordPrefix)
	if !ok {
		return KeyRecord{}, fmt.Errorf("msg: key record: want prefix %q", keyRecordPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return KeyRecord{}, fmt.Errorf("msg: key record: %w", err)
	}
	return ParseKeyRecord(b)
}
