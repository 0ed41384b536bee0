package vault

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"strings"

	"github.com/cosmos/go-bip39"
	"golang.org/x/text/unicode/norm"
)

// SeedSize is the length in bytes of a BIP39 seed, the root secret a vault
// file holds.
const SeedSize = 64

// ErrInvalidMnemonic is matched (with [errors.Is]) by every error that
// [ValidateMnemonic] and [SeedFromMnemonic] return for a mnemonic that is
// not a valid BIP39 English sentence.
var ErrInvalidMnemonic = errors.New("invalid mnemonic")

// NewMnemonic returns a new random BIP39 mnemonic in the English word list.
// words is the sentence length and must be 12, 15, 18, 21 or 24 (128 to 256
// bits of entropy from crypto/rand). The words are separated by single
// spaces.
//
// The result is the root secret in human form: show it once, never log it.
func NewMnemonic(words int) (string, error) {
	switch words {
	case 12, 15, 18, 21, 24:
	default:
		return "", fmt.Errorf("vault: mnemonic length %d words not supported, want 12, 15, 18, 21 or 24", words)
	}
	entropy := make([]byte, words*4/3) // words*11 bits = entropy + entropy/32 checksum bits
	defer wipe(entropy)
	_, _ = rand.Read(entropy) // crypto/rand.Read never fails; it crashes the program instead
	m, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return "", fmt.Errorf("vault: generate mnemonic: %w", err)
	}
	return m, nil
}

// ValidateMnemonic reports whether m is a valid BIP39 English mnemonic:
// after NFKD normalisation it must have 12, 15, 18, 21 or 24 words separated
// by white space, every word must be in the English word list (lower case),
// and the checksum must match. The error says which check failed and, for an
// unknown word, its position; it never repeats the words themselves, since
// they are secret. Every error matches [ErrInvalidMnemonic].
func ValidateMnemonic(m string) error {
	_, err := canonicalMnemonic(m)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	return nil
}

// SeedFromMnemonic validates mnemonic like [ValidateMnemonic] and returns
// the 64-byte BIP39 seed: PBKDF2-HMAC-SHA512 with 2048 iterations over the
// NFKD-normalised mnemonic, salted with "mnemonic" followed by the
// NFKD-normalised passphrase. The empty passphrase is the BIP39 default.
//
// White space between words is canonicalised to single spaces before
// hashing, so a sentence typed with extra spaces or line breaks still gives
// the seed of the canonical sentence. The caller owns the returned slice and
// should wipe it (for example with [clear]) when done.
func SeedFromMnemonic(mnemonic, passphrase string) ([]byte, error) {
	canonical, err := canonicalMnemonic(mnemonic)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	salt := []byte("mnemonic" + norm.NFKD.String(passphrase))
	defer wipe(salt)
	seed, err := pbkdf2.Key(sha512.New, canonical, salt, 2048, SeedSize)
	if err != nil {
		return nil, fmt.Errorf("vault: derive seed: %w", err)
	}
	return seed, nil
}

// canonicalMnemonic checks m and returns it NFKD-normalised with single
// spaces between the words.
func canonicalMnemonic(m string) (string, error) {
	words := strings.Fields(norm.NFKD.String(m))
	switch len(words) {
	case 12, 15, 18, 21, 24:
	default:
		return "", fmt.Errorf("%w: %d words, want 12, 15, 18, 21 or 24", ErrInvalidMnemonic, len(words))
	}
	for i, w := range words {
		if _, ok := bip39.ReverseWordMap[w]; !ok {
			return "", fmt.Errorf("%w: word %d is not in the BIP39 English word list", ErrInvalidMnemonic, i+1)
		}
	}
	canonical := strings.Join(words, " ")
	// MnemonicToByteArray recomputes the checksum; word count and words are
	// already known to be valid, so an error here is a checksum mismatch.
	entropy, err := bip39.MnemonicToByteArray(canonical)
	if err != nil {
		return "", fmt.Errorf("%w: checksum mismatch (a word is wrong or out of order)", ErrInvalidMnemonic)
	}
	wipe(entropy)
	return canonical, nil
}
