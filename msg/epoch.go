package msg

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/alkdev/alknet/core"
)

// Key epochs. Time is cut into epochs of a fixed length counted from the
// Unix epoch; every mix and directory node of one mixnet must use the same
// length. A mix has one X25519 key per epoch, derived from a seed.
const (
	// MixKeyPath is the vault path (SLIP-0010, hardened) whose 32-byte
	// private key seed is a mix's key seed (see [MixEpochKey]).
	MixKeyPath = "m/74'/3'/1'"
	// DefaultEpochLength is the length of a key epoch when a configured
	// one is zero.
	DefaultEpochLength = time.Hour
	// DefaultEpochGrace is how long a mix keeps accepting the previous
	// epoch's key after an epoch starts, when a configured grace is zero.
	DefaultEpochGrace = 10 * time.Minute
	// mixKeyInfo is the HKDF info prefix of epoch keys.
	mixKeyInfo = "alknet/msg mix key v1"
)

// EpochAt returns the number of the epoch of the given length (whole
// milliseconds, at least one, as [CheckEpochs] requires) that t lies in:
// floor(Unix milliseconds / length).
func EpochAt(t time.Time, length time.Duration) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms) / uint64(length.Milliseconds())
}

// EpochStart returns when epoch e of the given length begins.
func EpochStart(e uint64, length time.Duration) time.Time {
	return time.UnixMilli(int64(e * uint64(length.Milliseconds())))
}

// checkEpochs validates an epoch length and grace, zero meaning the
// defaults, and returns them with the defaults filled in.
func checkEpochs(length, grace time.Duration) (time.Duration, time.Duration, error) {
	if length == 0 {
		length = DefaultEpochLength
	}
	if grace == 0 {
		grace = min(DefaultEpochGrace, length/2)
	}
	if length < time.Second || length%time.Millisecond != 0 {
		return 0, 0, fmt.Errorf("msg: epoch length %v: want whole milliseconds, at least 1s", length)
	}
	if grace < 0 || grace >= length {
		return 0, 0, fmt.Errorf("msg: epoch grace %v: want 0 to less than the epoch length %v", grace, length)
	}
	return length, grace, nil
}

// MixEpochKey derives a mix's X25519 key for an epoch from its 32-byte
// key seed (the seed at [MixKeyPath]):
// HKDF-SHA256(ikm = seed, salt = none, info = "alknet/msg mix key v1" ||
// epoch (8, big-endian), 32 bytes), clamped as [NewKey] does.
func MixEpochKey(seed []byte, epoch uint64) (*ecdh.PrivateKey, error) {
	if len(seed) != KeySize {
		return nil, fmt.Errorf("msg: mix key seed is %d bytes, want %d", len(seed), KeySize)
	}
	info := binary.BigEndian.AppendUint64([]byte(mixKeyInfo), epoch)
	k, err := hkdf.Key(sha256.New, seed, nil, string(info), KeySize)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return NewKey(k)
}

// mixKeyContext separates mix-key-record signatures from every other
// signature made with a node key.
const mixKeyContext = "alknet/msg mix key record v1\x00"

// mixKeyRecordSize is node, epoch, key, signature.
const mixKeyRecordSize = KeySize + 8 + KeySize + ed25519.SignatureSize

// MixKeyRecord is a mix's key for one epoch, signed by its node key: what
// a directory node collects from each mix before listing it.
type MixKeyRecord struct {
	// Node is the mix.
	Node core.NodeID
	// Epoch is the epoch Key belongs to.
	Epoch uint64
	// Key is the mix's X25519 public key of Epoch.
	Key *ecdh.PublicKey
	// Signature is the node key's Ed25519 signature over the context
	// string, node, epoch and key.
	Signature []byte
}

// signed is what the record's signature covers.
func (r MixKeyRecord) signed() []byte {
	b := append([]byte(mixKeyContext), r.Node.PublicKey()...)
	b = binary.BigEndian.AppendUint64(b, r.Epoch)
	return append(b, r.Key.Bytes()...)
}

// signMixKeyRecord signs key of epoch with the node key.
func signMixKeyRecord(nodeKey ed25519.PrivateKey, epoch uint64, key *ecdh.PublicKey) MixKeyRecord {
	r := MixKeyRecord{Node: nodeID(nodeKey), Epoch: epoch, Key: key}
	r.Signature = ed25519.Sign(nodeKey, r.signed())
	return r
}

// nodeID is the NodeID of a valid Ed25519 private key.
func nodeID(k ed25519.PrivateKey) core.NodeID {
	id, _ := core.NodeIDFromPublicKey(k.Public().(ed25519.PublicKey))
	return id
}

// MarshalBinary encodes the record: node (32) || epoch (8) || key (32) ||
// signature (64).
func (r MixKeyRecord) MarshalBinary() ([]byte, error) {
	if r.Key == nil || len(r.Signature) != ed25519.SignatureSize {
		return nil, errors.New("msg: mix key record: incomplete")
	}
	return append(r.signed()[len(mixKeyContext):], r.Signature...), nil
}

// ParseMixKeyRecord decodes a record from MarshalBinary's form and
// verifies its signature.
func ParseMixKeyRecord(b []byte) (MixKeyRecord, error) {
	if len(b) != mixKeyRecordSize {
		return MixKeyRecord{}, fmt.Errorf("msg: mix key record: %d bytes, want %d", len(b), mixKeyRecordSize)
	}
	id, err := core.NodeIDFromPublicKey(ed25519.PublicKey(b[:KeySize]))
	if err != nil {
		return MixKeyRecord{}, fmt.Errorf("msg: mix key record: %w", err)
	}
	key, err := ecdh.X25519().NewPublicKey(b[KeySize+8 : 2*KeySize+8])
	if err != nil {
		return MixKeyRecord{}, fmt.Errorf("msg: mix key record: %w", err)
	}
	r := MixKeyRecord{Node: id, Epoch: binary.BigEndian.Uint64(b[KeySize:]), Key: key,
		Signature: append([]byte{}, b[2*KeySize+8:]...)}
	if !ed25519.Verify(id.PublicKey(), r.signed(), r.Signature) {
		return MixKeyRecord{}, errors.New("msg: mix key record: bad signature")
	}
	return r, nil
}

// CheckEpochs reports whether an epoch length and grace are usable, zero
// meaning the defaults: the length whole milliseconds and at least 1 s,
// the grace less than the length.
func CheckEpochs(length, grace time.Duration) error {
	_, _, err := checkEpochs(length, grace)
	return err
}
