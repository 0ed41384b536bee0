package vault

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// abandonAbout is the 12-word all-zero-entropy BIP39 test mnemonic.
const abandonAbout = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"

// trezorSeed is the seed of abandonAbout with passphrase "TREZOR".
const trezorSeed = "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04"

func TestSeedFromMnemonicVectors(t *testing.T) {
	// Official BIP39 English vectors from trezor/python-mnemonic
	// vectors.json, all with passphrase "TREZOR".
	tests := []struct {
		name     string
		mnemonic string
		seed     string
	}{
		{"12 words zero entropy", abandonAbout, trezorSeed},
		{"12 words 7f", "legal winner thank year wave sausage worth useful legal winner thank yellow",
			"2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607"},
		{"12 words ff", "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
			"ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069"},
		{"18 words zero entropy", "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon agent",
			"035895f2f481b1b0f01fcf8c289c794660b289981a78f8106447707fdd9666ca06da5a9a565181599b79f53b844d8a71dd9f439c52a3d7b3e8a79c906ac845fa"},
		{"24 words ff", "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo vote",
			"dd48c104698c30cfe2b6142103248622fb7bb0ff692eebb00089b32d22484e1613912f0a5b694407be899ffd31ed3992c456cdf60f5d4564b8ba3f05a69890ad"},
		{"24 words random", "hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple dilemma loan word shrug inflict delay length",
			"64c87cde7e12ecf6704ab95bb1408bef047c22db4cc7491c4271d170a1b213d20b385bc1588d9c7b38f1b39d415665b8a9030c9ec653d75e65f847d8fc1fc440"},
		// Not a published vector: the same sentence with irregular white
		// space must give the canonical sentence's seed.
		{"irregular white space", "  abandon\tabandon abandon  abandon abandon abandon\nabandon abandon abandon abandon abandon about \n", trezorSeed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seed, err := SeedFromMnemonic(tt.mnemonic, "TREZOR")
			if err != nil {
				t.Fatalf("SeedFromMnemonic(%q) error: %v", tt.mnemonic, err)
			}
			if got := hex.EncodeToString(seed); got != tt.seed {
				t.Errorf("SeedFromMnemonic(%q, TREZOR)\n got %s\nwant %s", tt.mnemonic, got, tt.seed)
			}
		})
	}
}

func TestSeedFromMnemonicNFKD(t *testing.T) {
	// "é" precomposed (NFC) and decomposed (NFD) must give the same seed,
	// since BIP39 hashes the NFKD form; a different passphrase must not.
	nfc, err := SeedFromMnemonic(abandonAbout, "caf\u00e9")
	if err != nil {
		t.Fatal(err)
	}
	nfd, err := SeedFromMnemonic(abandonAbout, "cafe\u0301")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := SeedFromMnemonic(abandonAbout, "cafe")
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(nfc) != hex.EncodeToString(nfd) {
		t.Errorf("NFC and NFD passphrases give different seeds: %x vs %x", nfc, nfd)
	}
	if hex.EncodeToString(nfc) == hex.EncodeToString(plain) {
		t.Errorf("passphrases %q and %q give the same seed", "café", "cafe")
	}
}

func TestValidateMnemonic(t *testing.T) {
	tests := []struct {
		name     string
		mnemonic string
		wantErr  string // substring; "" means valid
	}{
		{"valid 12", abandonAbout, ""},
		{"valid 24", "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo vote", ""},
		{"empty", "", "0 words"},
		{"11 words", "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about", "11 words"},
		{"13 words", abandonAbout + " abandon", "13 words"},
		{"25 words", strings.Repeat("abandon ", 24) + "art", "25 words"},
		{"unknown word 3", "abandon abandon qwertyx abandon abandon abandon abandon abandon abandon abandon abandon about", "word 3 is not in"},
		{"upper case word 1", "Abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about", "word 1 is not in"},
		{"bad checksum", strings.TrimSpace(strings.Repeat("abandon ", 12)), "checksum"},
		{"swapped words", "about abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon", "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateMnemonic(tt.mnemonic)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateMnemonic(%q) = %v, want nil", tt.mnemonic, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateMnemonic(%q) = nil, want error containing %q", tt.mnemonic, tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidMnemonic) {
				t.Errorf("ValidateMnemonic(%q) = %v, does not match ErrInvalidMnemonic", tt.mnemonic, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "vault: ") {
				t.Errorf("ValidateMnemonic(%q) = %q, want \"vault: \" prefix and %q", tt.mnemonic, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "qwertyx") || strings.Contains(err.Error(), "Abandon") {
				t.Errorf("error %q repeats a mnemonic word", err)
			}
			if _, serr := SeedFromMnemonic(tt.mnemonic, ""); serr == nil {
				t.Errorf("SeedFromMnemonic(%q) accepted an invalid mnemonic", tt.mnemonic)
			}
		})
	}
}

func TestNewMnemonic(t *testing.T) {
	for _, words := range []int{12, 15, 18, 21, 24} {
		m1, err := NewMnemonic(words)
		if err != nil {
			t.Fatalf("NewMnemonic(%d): %v", words, err)
		}
		if n := len(strings.Split(m1, " ")); n != words {
			t.Errorf("NewMnemonic(%d) has %d words", words, n)
		}
		if err := ValidateMnemonic(m1); err != nil {
			t.Errorf("NewMnemonic(%d) is not valid: %v", words, err)
		}
		m2, err := NewMnemonic(words)
		if err != nil {
			t.Fatal(err)
		}
		if m1 == m2 {
			t.Errorf("NewMnemonic(%d) returned the same sentence twice", words)
		}
	}
	for _, words := range []int{-1, 0, 11, 13, 23, 25, 48} {
		if _, err := NewMnemonic(words); err == nil {
			t.Errorf("NewMnemonic(%d) = nil error, want error", words)
		}
	}
}
