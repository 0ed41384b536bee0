package core

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
)

// TokenPrefix starts every alknet API token, so a leaked token says what it
// is (secret scanners can match it) and a token is never mistaken for another
// credential.
const TokenPrefix = "alk_"

// tokenBytes is the entropy of a generated token: 256 bits.
const tokenBytes = 32

// NewToken returns a fresh API token (TokenPrefix, then 52 z-base-32
// characters of 256 random bits) and its hash. Show the token to its owner
// once; store only the hash.
func NewToken() (token string, hash TokenHash, err error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", TokenHash{}, fmt.Errorf("core: generate token: %w", err)
	}
	token = TokenPrefix + zbase32.EncodeToString(b[:])
	return token, HashToken(token), nil
}

// TokenHash is the SHA-256 of a token. Its text form is "sha256:" followed by
// 64 lowercase hex digits. The zero value matches no token.
type TokenHash struct {
	sum [sha256.Size]byte
}

// HashToken returns the hash under which a token is stored.
func HashToken(token string) TokenHash {
	return TokenHash{sum: sha256.Sum256([]byte(token))}
}

// ParseTokenHash parses the "sha256:<hex>" form.
func ParseTokenHash(s string) (TokenHash, error) {
	var h TokenHash
	hexPart, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hexPart) != 2*sha256.Size {
		return h, fmt.Errorf("core: token hash %q: want \"sha256:\" and 64 hex digits", Clip(s))
	}
	if _, err := hex.Decode(h.sum[:], []byte(hexPart)); err != nil {
		return TokenHash{}, fmt.Errorf("core: token hash %q: want \"sha256:\" and 64 hex digits", Clip(s))
	}
	return h, nil
}

// String returns the "sha256:<hex>" form.
func (h TokenHash) String() string { return "sha256:" + hex.EncodeToString(h.sum[:]) }

// IsZero reports whether h is the zero hash.
func (h TokenHash) IsZero() bool { return h == TokenHash{} }

// Equal compares two hashes in constant time.
func (h TokenHash) Equal(o TokenHash) bool {
	return subtle.ConstantTimeCompare(h.sum[:], o.sum[:]) == 1
}

// MarshalText implements encoding.TextMarshaler.
func (h TokenHash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseTokenHash].
func (h *TokenHash) UnmarshalText(b []byte) error {
	v, err := ParseTokenHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}
