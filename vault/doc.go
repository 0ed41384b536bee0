// Package vault holds an alknet node's root secret and everything derived
// from it.
//
// The root secret is a 64-byte BIP39 seed. [NewMnemonic], [ValidateMnemonic]
// and [SeedFromMnemonic] turn an English BIP39 mnemonic (12 to 24 words) and
// an optional passphrase into that seed; mnemonic and passphrase are
// normalised to Unicode NFKD first, as BIP39 requires.
//
// Keys come from the seed by SLIP-0010 Ed25519 derivation ([DeriveEd25519]):
// hardened indices only, and the 32-byte child key is used as an RFC 8032
// private key seed ([crypto/ed25519.NewKeyFromSeed]), so derived keys match
// every other SLIP-0010 implementation. Paths ([Path], [ParsePath]) use the
// coin type 74' reserved for alknet: [NodeKeyPath] m/74'/0'/0' is the node
// identity key and [SecretKeyPath] m/74'/2'/v' the key from which secrets of
// key version v are sealed. Changing these prefixes re-keys every node; they are a one-way door.
//
// On disk the seed lives in a vault file ([Create], [Load]) sealed with
// AES-256-GCM under a key stretched from a passphrase by Argon2id; the format
// is documented on [Create] and in docs/protocols/vault-file.md. An open
// [Vault] derives keys, seals and opens small secrets for other components
// ([Vault.Seal], [Vault.Open]) and rotates the sealing key
// ([Vault.RotateKey], [Vault.Rotate]).
//
// The package is a library: it reads no flags or environment variables,
// logs nothing and opens no network connections.
//
// # Memory hygiene
//
// Seeds and keys are kept in byte slices and overwritten with zeros when
// they are no longer needed ([Vault.Close], [Key.Wipe]). Go cannot promise
// more than that: the garbage collector may have copied a slice before it
// was wiped, strings (a mnemonic, a passphrase given as string) cannot be
// wiped at all, and the internal state of HMAC, Argon2 and AES values is out
// of reach. Memory is not locked against swapping. Secrets are never
// logged, and the types that hold them print as redacted.
package vault
