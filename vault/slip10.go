package vault

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Seed length limits of SLIP-0010 (128 to 512 bits).
const (
	minSeedSize = 16
	maxSeedSize = 64
)

// Key is an Ed25519 key derived by SLIP-0010: a 32-byte private key (an
// RFC 8032 seed) and its chain code. Copies of a Key share the same secret
// storage, so [Key.Wipe] on any copy wipes them all. The zero Key, and a Key
// after Wipe, hold no key: PublicKey and PrivateKey return nil.
//
// A Key prints as its public key with the private part redacted, whatever
// the fmt verb. Its methods are not safe for use concurrently with Wipe.
type Key struct {
	m *keyMaterial
}

// keyMaterial is the storage Key copies share.
type keyMaterial struct {
	priv  [32]byte // SLIP-0010 child key, an RFC 8032 private key seed
	chain [32]byte
	pub   [32]byte
	wiped bool
}

// DeriveEd25519 derives the SLIP-0010 Ed25519 key at path p from seed, which
// must be 16 to 64 bytes long (a BIP39 seed is 64). Every component of p must
// be hardened; the empty path gives the master key.
//
// The master key is HMAC-SHA512(key "ed25519 seed", seed); each child is
// HMAC-SHA512(parent chain code, 0x00 || parent key || ser32(index)); the
// left half of each result is the key, the right half the chain code.
func DeriveEd25519(seed []byte, p Path) (Key, error) {
	k, err := deriveEd25519(seed, p)
	if err != nil {
		return Key{}, fmt.Errorf("vault: derive %s: %w", p, err)
	}
	return k, nil
}

// deriveEd25519 is DeriveEd25519 without the error prefix.
func deriveEd25519(seed []byte, p Path) (Key, error) {
	if len(seed) < minSeedSize || len(seed) > maxSeedSize {
		return Key{}, fmt.Errorf("seed is %d bytes, want %d to %d", len(seed), minSeedSize, maxSeedSize)
	}
	if len(p) > MaxPathDepth {
		return Key{}, fmt.Errorf("path has %d components, at most %d allowed", len(p), MaxPathDepth)
	}
	for i, idx := range p {
		if idx < HardenedOffset {
			return Key{}, fmt.Errorf("component %d (index %d) is not hardened; Ed25519 supports hardened indices only", i+1, idx)
		}
	}

	km := &keyMaterial{}
	mac := hmac.New(sha512.New, []byte("ed25519 seed"))
	mac.Write(seed)
	sum := mac.Sum(make([]byte, 0, sha512.Size))
	defer wipe(sum)
	copy(km.priv[:], sum[:32])
	copy(km.chain[:], sum[32:])

	var data [1 + 32 + 4]byte // 0x00 || ser256(k_par) || ser32(i)
	defer wipe(data[:])
	for _, idx := range p {
		copy(data[1:33], km.priv[:])
		binary.BigEndian.PutUint32(data[33:], idx)
		mac := hmac.New(sha512.New, km.chain[:])
		mac.Write(data[:])
		sum = mac.Sum(sum[:0])
		copy(km.priv[:], sum[:32])
		copy(km.chain[:], sum[32:])
	}

	priv := ed25519.NewKeyFromSeed(km.priv[:])
	copy(km.pub[:], priv.Public().(ed25519.PublicKey))
	wipe(priv)
	return Key{m: km}, nil
}

// valid reports whether k holds a key.
func (k Key) valid() bool {
	return k.m != nil && !k.m.wiped
}

// PublicKey returns the Ed25519 public key, or nil for a zero or wiped Key.
func (k Key) PublicKey() ed25519.PublicKey {
	if !k.valid() {
		return nil
	}
	return ed25519.PublicKey(append([]byte(nil), k.m.pub[:]...))
}

// PrivateKey returns a new copy of the Ed25519 private key (seed and public
// key, as [ed25519.NewKeyFromSeed] builds it), or nil for a zero or wiped
// Key. The caller owns the copy and should wipe it when done.
func (k Key) PrivateKey() ed25519.PrivateKey {
	if !k.valid() {
		return nil
	}
	return ed25519.NewKeyFromSeed(k.m.priv[:])
}

// ChainCode returns the SLIP-0010 chain code, or the zero array for a zero
// or wiped Key.
func (k Key) ChainCode() [32]byte {
	if !k.valid() {
		return [32]byte{}
	}
	return k.m.chain
}

// Wipe overwrites the private key and chain code with zeros, for this Key and
// every copy of it. It is idempotent; a zero Key is left as it is.
func (k Key) Wipe() {
	if k.m == nil {
		return
	}
	wipe(k.m.priv[:])
	wipe(k.m.chain[:])
	wipe(k.m.pub[:])
	k.m.wiped = true
}

// String returns a redacted description naming only the public key.
func (k Key) String() string {
	if !k.valid() {
		return "vault.Key{}"
	}
	return "vault.Key{public: " + hex.EncodeToString(k.m.pub[:]) + ", private: REDACTED}"
}

// Format writes [Key.String] for every verb, so no fmt verb (%x and %#v
// included) can print the private key.
func (k Key) Format(f fmt.State, _ rune) {
	_, _ = f.Write([]byte(k.String()))
}
