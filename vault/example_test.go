package vault_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/alkdev/alknet/vault"
)

// exampleParams keep the examples fast. Real vault files should use the
// zero KDFParams, which means vault.DefaultKDFParams().
var exampleParams = vault.KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}

func ExampleNewMnemonic() {
	m, err := vault.NewMnemonic(24)
	if err != nil {
		log.Fatal(err)
	}
	// Show m to the operator once; never log it.
	fmt.Println(len(strings.Fields(m)), vault.ValidateMnemonic(m) == nil)
	// Output: 24 true
}

func ExampleSeedFromMnemonic() {
	seed, err := vault.SeedFromMnemonic("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about", "TREZOR")
	if err != nil {
		log.Fatal(err)
	}
	defer clear(seed)
	fmt.Printf("%x\n", seed[:16])
	// Output: c55257c360c07c72029aebc1b53c05ed
}

func ExampleParsePath() {
	p, err := vault.ParsePath("m/74h/0h/0h")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p, p.String() == vault.NodeKeyPath().String())

	_, err = vault.ParsePath("m/74'/0")
	fmt.Println(err)
	// Output:
	// m/74'/0'/0' true
	// vault: parse path "m/74'/0": component 2 "0": not hardened (append ' or h): Ed25519 derivation supports hardened indices only
}

func ExampleDeriveEd25519() {
	seed, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f") // SLIP-0010 test vector 1
	p, _ := vault.ParsePath("m/0'/1'")
	k, err := vault.DeriveEd25519(seed, p)
	if err != nil {
		log.Fatal(err)
	}
	defer k.Wipe()
	sig := ed25519.Sign(k.PrivateKey(), []byte("hello"))
	fmt.Println(ed25519.Verify(k.PublicKey(), []byte("hello"), sig))
	fmt.Println(k) // the private key is never printed
	// Output:
	// true
	// vault.Key{public: 1932a5270f335bed617d5b935c80aedb1a35bd9fc1e31acafd5372c30f5c1187, private: REDACTED}
}

func ExampleCreate() {
	dir, err := os.MkdirTemp("", "vault-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "node.vault")

	seed, err := vault.SeedFromMnemonic("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about", "TREZOR")
	if err != nil {
		log.Fatal(err)
	}
	v, err := vault.Create(path, seed, []byte("file passphrase"), exampleParams)
	clear(seed)
	if err != nil {
		log.Fatal(err)
	}
	v.Close()

	// Later, at start-up:
	v, err = vault.Load(path, []byte("file passphrase"))
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	key, err := v.NodeKey()
	if err != nil {
		log.Fatal(err)
	}
	defer clear(key)
	fmt.Printf("node public key %x\n", key.Public())

	_, err = vault.Load(path, []byte("wrong"))
	fmt.Println(strings.Replace(err.Error(), path, "node.vault", 1))
	// Output:
	// node public key b2b3a6a0ef04d32f4f3404ad911534e8f8b022f147fee1433a7fa354a8b3f37f
	// vault: node.vault: wrong passphrase or corrupted file
}

func ExampleVault_Seal() {
	dir, err := os.MkdirTemp("", "vault-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	v, err := vault.Create(filepath.Join(dir, "node.vault"), make([]byte, vault.SeedSize), []byte("pass"), exampleParams)
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	// Seal a credential, binding it to its name.
	ct, err := v.Seal([]byte("ghp_example"), []byte("github"))
	if err != nil {
		log.Fatal(err)
	}
	pt, err := v.Open(ct, []byte("github"))
	fmt.Printf("%s %v\n", pt, err)

	// Rotate: new ciphertexts use version 1, old ones still open and can
	// be moved to the new version one by one.
	version, err := v.RotateKey()
	if err != nil {
		log.Fatal(err)
	}
	ct, err = v.Rotate(ct, []byte("github"))
	if err != nil {
		log.Fatal(err)
	}
	pt, err = v.Open(ct, []byte("github"))
	fmt.Printf("version %d: %s %v\n", version, pt, err)
	// Output:
	// ghp_example <nil>
	// version 1: ghp_example <nil>
}
