package vault

import (
	"bytes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sealed-secret layout, format version 1. See [Vault.Seal].
const (
	secretMagic         = "ALKS"
	secretFormatVersion = 1
	offSecretVersion    = len(secretMagic)        // 4
	offSecretKeyVersion = offSecretVersion + 1    // 5
	offSecretNonce      = offSecretKeyVersion + 4 // 9
	secretHeaderSize    = offSecretNonce + nonceSize
	minSecretSize       = secretHeaderSize + tagSize

	// secretKeyInfo is the HKDF info string that separates the AES keys
	// of sealed secrets from every other use of the SLIP-0010 keys at
	// SecretKeyPath. Changing it makes every sealed secret unreadable.
	secretKeyInfo = "alknet vault secret v1"
)

// ErrDecrypt is matched by the error [Vault.Open] returns when a well-formed
// ciphertext does not authenticate: wrong additional data, a ciphertext
// sealed by a vault with another seed, or tampering. These cases cannot be
// told apart.
var ErrDecrypt = errors.New("decryption failed (wrong additional data, wrong vault or tampered ciphertext)")

// ErrMalformedCiphertext is matched by the error [Vault.Open] returns when
// its input is not a sealed secret this package can read: too short, bad
// magic, unsupported format version or out-of-range key version.
var ErrMalformedCiphertext = errors.New("malformed ciphertext")

// Seal encrypts plaintext with AES-256-GCM under the key of the current
// secret-key version v ([Vault.KeyVersion]) and binds it to aad, which
// [Vault.Open] must be given unchanged (aad may be nil; use it to tie a
// secret to its name or owner). It is safe to call concurrently.
//
// The AES key is HKDF-SHA256 (no salt, info "alknet vault secret v1") of the
// 32-byte SLIP-0010 private key at [SecretKeyPath](v). The result, format
// version 1, is
//
//	offset size field
//	     0    4 magic "ALKS"
//	     4    1 format version, 0x01
//	     5    4 key version v, big-endian
//	     9   12 random nonce
//	    21    n AES-256-GCM ciphertext, then the 16-byte tag
//
// and the GCM additional data is bytes 0..20 followed by aad.
func (v *Vault) Seal(plaintext, aad []byte) ([]byte, error) {
	v.mu.Lock()
	if v.seed == nil {
		v.mu.Unlock()
		return nil, ErrClosed
	}
	version := v.keyVersion
	aead, err := v.secretAEADLocked(version)
	v.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("vault: seal: %w", err)
	}

	out := make([]byte, secretHeaderSize, secretHeaderSize+len(plaintext)+tagSize)
	copy(out, secretMagic)
	out[offSecretVersion] = secretFormatVersion
	binary.BigEndian.PutUint32(out[offSecretKeyVersion:], version)
	var nonce [nonceSize]byte
	_, _ = rand.Read(nonce[:])
	copy(out[offSecretNonce:], nonce[:])
	return aead.Seal(out, nonce[:], plaintext, secretAD(out[:secretHeaderSize], aad)), nil
}

// Open decrypts a ciphertext made by [Vault.Seal] with the same aad, under
// the key version recorded in it, which may be older than the current one.
// A ciphertext that is not in the Seal format gives an error matching
// [ErrMalformedCiphertext]; one that does not authenticate, [ErrDecrypt]. A
// key version newer than the vault's current version is refused: the Vault
// is older than the file that sealed it and should be loaded again. It is
// safe to call concurrently and never panics, whatever the input.
func (v *Vault) Open(ciphertext, aad []byte) ([]byte, error) {
	version, err := parseSecretHeader(ciphertext)
	if err != nil {
		return nil, fmt.Errorf("vault: open: %w", err)
	}
	v.mu.Lock()
	if v.seed == nil {
		v.mu.Unlock()
		return nil, ErrClosed
	}
	current := v.keyVersion
	var aead cipher.AEAD
	if version <= current {
		aead, err = v.secretAEADLocked(version)
	}
	v.mu.Unlock()
	if version > current {
		return nil, fmt.Errorf("vault: open: key version %d is newer than the vault's current version %d; reload the vault file", version, current)
	}
	if err != nil {
		return nil, fmt.Errorf("vault: open: %w", err)
	}
	header := ciphertext[:secretHeaderSize]
	plaintext, err := aead.Open(nil, header[offSecretNonce:], ciphertext[secretHeaderSize:], secretAD(header, aad))
	if err != nil {
		return nil, fmt.Errorf("vault: open: %w", ErrDecrypt)
	}
	return plaintext, nil
}

// Rotate opens ciphertext (of any version up to the current one) with aad
// and seals the plaintext again, with aad, under the current key version.
// Callers replace their stored ciphertexts with the result after
// [Vault.RotateKey]; ciphertexts not yet rotated keep opening.
func (v *Vault) Rotate(ciphertext, aad []byte) ([]byte, error) {
	plaintext, err := v.Open(ciphertext, aad)
	if err != nil {
		return nil, err
	}
	defer wipe(plaintext)
	return v.Seal(plaintext, aad)
}

// KeyVersion returns the current secret-key version, the one [Vault.Seal]
// uses. It starts at 0 and is advanced by [Vault.RotateKey].
func (v *Vault) KeyVersion() uint32 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keyVersion
}

// RotateKey advances the current secret-key version by one, records it in
// the vault file (rewritten atomically, with a fresh nonce) and returns the
// new version. Ciphertexts of earlier versions still open; [Vault.Rotate]
// moves them to the new version. On error the file and the Vault are
// unchanged.
func (v *Vault) RotateKey() (uint32, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seed == nil {
		return 0, ErrClosed
	}
	if v.keyVersion >= MaxKeyVersion {
		return 0, fmt.Errorf("vault: rotate key of %s: key version %d is the last one", v.path, v.keyVersion)
	}
	next := v.keyVersion + 1
	data, err := sealFile(v.fileKey, v.salt, v.params, next, v.seed)
	if err == nil {
		err = writeFileAtomic(v.path, data, true)
	}
	if err != nil {
		return 0, fmt.Errorf("vault: rotate key of %s: %w", v.path, err)
	}
	v.keyVersion = next
	wipe(v.secretKey)
	v.secretKey = nil
	return next, nil
}

// parseSecretHeader checks the layout of a sealed secret and returns its key
// version. Errors match ErrMalformedCiphertext.
func parseSecretHeader(c []byte) (uint32, error) {
	if len(c) < minSecretSize {
		return 0, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformedCiphertext, len(c), minSecretSize)
	}
	if !bytes.HasPrefix(c, []byte(secretMagic)) {
		return 0, fmt.Errorf("%w: bad magic", ErrMalformedCiphertext)
	}
	if f := c[offSecretVersion]; f != secretFormatVersion {
		return 0, fmt.Errorf("%w: unsupported format version %d (this build reads version %d)", ErrMalformedCiphertext, f, secretFormatVersion)
	}
	version := binary.BigEndian.Uint32(c[offSecretKeyVersion:])
	if version > MaxKeyVersion {
		return 0, fmt.Errorf("%w: key version %d out of range 0..%d", ErrMalformedCiphertext, version, MaxKeyVersion)
	}
	return version, nil
}

// secretAD returns the GCM additional data of a sealed secret: its header
// followed by the caller's aad, in a new slice.
func secretAD(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	ad = append(ad, header...)
	return append(ad, aad...)
}

// secretAEADLocked returns AES-256-GCM under the secret key of version,
// caching the key of the current version. v.mu must be held and the vault
// open.
func (v *Vault) secretAEADLocked(version uint32) (cipher.AEAD, error) {
	if version == v.keyVersion {
		if v.secretKey == nil {
			key, err := deriveSecretKey(v.seed, version)
			if err != nil {
				return nil, err
			}
			v.secretKey = key
		}
		return newGCM(v.secretKey)
	}
	key, err := deriveSecretKey(v.seed, version)
	if err != nil {
		return nil, err
	}
	defer wipe(key)
	return newGCM(key)
}

// deriveSecretKey returns the 32-byte AES key of secret-key version.
func deriveSecretKey(seed []byte, version uint32) ([]byte, error) {
	k, err := deriveEd25519(seed, SecretKeyPath(version))
	if err != nil {
		return nil, err
	}
	defer k.Wipe()
	return hkdf.Key(sha256.New, k.m.priv[:], nil, secretKeyInfo, 32)
}
