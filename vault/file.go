package vault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Vault file layout, format version 1. See [Create].
const (
	fileMagic         = "ALKNETV\x00"
	fileFormatVersion = 1
	saltSize          = 16
	nonceSize         = 12
	tagSize           = 16
	fileKeySize       = 32 // AES-256

	offVersion     = len(fileMagic)                      // 8
	offTime        = offVersion + 1                      // 9
	offMemory      = offTime + 4                         // 13
	offThreads     = offMemory + 4                       // 17
	offSalt        = offThreads + 1                      // 18
	offNonce       = offSalt + saltSize                  // 34
	offKeyVersion  = offNonce + nonceSize                // 46
	fileHeaderSize = offKeyVersion + 4                   // 50
	fileSize       = fileHeaderSize + SeedSize + tagSize // 130

	// maxFileRead bounds what Load reads, so a huge file is refused
	// without being read into memory.
	maxFileRead = 4096
)

// Limits on Argon2id parameters, checked on every file written and read so
// that a hostile file cannot make Load allocate unbounded memory or run for
// hours.
const (
	maxKDFTime      = 100
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
)

// ErrWrongPassphrase is matched (with [errors.Is]) by the error [Load]
// returns when the file is well formed but its sealed seed does not
// authenticate under the key derived from the passphrase. AES-GCM cannot
// tell a wrong passphrase from a corrupted salt, nonce or ciphertext, so the
// message says both.
var ErrWrongPassphrase = errors.New("wrong passphrase or corrupted file")

// ErrInvalidFile is matched by the errors [Load] returns when the file is not
// a vault file this package can read: too short, wrong magic, unsupported
// format version, out-of-range parameters or trailing data.
var ErrInvalidFile = errors.New("invalid vault file")

// ErrInsecureMode is matched by the error [Load] returns when the vault file
// may be read or written by its group or by others (any of the mode bits
// 0o077): as OpenSSH refuses a private key file that is "too open", the
// vault is refused rather than used while others can copy it (for an
// offline guess at its passphrase, or the seed outright when it has none)
// or replace it. The error says the fix: chmod 600 <file>. Files written by
// this package are always mode 0600. Not checked on Windows, whose access
// control mode bits do not express.
var ErrInsecureMode = errors.New("permissions too open")

// ErrClosed is returned by the methods of a [Vault] after [Vault.Close].
var ErrClosed = errors.New("vault: closed")

// KDFParams are the Argon2id parameters that stretch a passphrase into the
// key sealing a vault file. They are stored in the file, so a file always
// opens with the parameters it was written with.
//
// The zero KDFParams means [DefaultKDFParams] where [Create] and
// [Vault.ChangePassphrase] accept it.
type KDFParams struct {
	// Time is the number of passes over memory, 1 to 100.
	Time uint32
	// MemoryKiB is the memory used, in KiB: at least 8 × Threads, at most
	// 4 GiB (4194304).
	MemoryKiB uint32
	// Threads is the Argon2 degree of parallelism (lanes), at least 1. It is
	// part of the hash: the same file needs the same value on every machine.
	Threads uint8
}

// DefaultKDFParams returns the parameters [Create] uses for the zero
// KDFParams: Time 2, MemoryKiB 65536 (64 MiB), Threads 4. That is RFC 9106
// §4's second recommended option with one pass fewer, above OWASP's
// Argon2id minimums, so that a node unlocks its vault and is serving within
// 200 ms: one [Load] takes about 80 ms on a 2-core x86-64 machine
// (BenchmarkLoadDefaultParams).
func DefaultKDFParams() KDFParams {
	return KDFParams{Time: 2, MemoryKiB: 64 * 1024, Threads: 4}
}

// UnprotectedKDFParams returns the cheapest parameters [KDFParams.Validate]
// accepts: one pass over 8 KiB. They are for a vault whose passphrase is
// empty, where stretching protects nothing (the empty passphrase is the
// first guess) and would only slow every command that unlocks the vault.
// [Vault.ChangePassphrase] with the zero KDFParams moves such a vault to
// [DefaultKDFParams].
func UnprotectedKDFParams() KDFParams {
	return KDFParams{Time: 1, MemoryKiB: 8, Threads: 1}
}

// Validate reports every field of p outside its documented range, joined
// into one error.
func (p KDFParams) Validate() error {
	var errs []error
	if p.Time < 1 || p.Time > maxKDFTime {
		errs = append(errs, fmt.Errorf("KDF Time %d out of range 1..%d", p.Time, maxKDFTime))
	}
	if p.Threads < 1 {
		errs = append(errs, errors.New("KDF Threads 0 out of range 1..255"))
	}
	if minMem := 8 * uint32(max(p.Threads, 1)); p.MemoryKiB < minMem || p.MemoryKiB > maxKDFMemoryKiB {
		errs = append(errs, fmt.Errorf("KDF MemoryKiB %d out of range %d..%d", p.MemoryKiB, minMem, maxKDFMemoryKiB))
	}
	return errors.Join(errs...)
}

// orDefault returns DefaultKDFParams for the zero value and p otherwise.
func (p KDFParams) orDefault() KDFParams {
	if p == (KDFParams{}) {
		return DefaultKDFParams()
	}
	return p
}

// deriveFileKey stretches passphrase into the AES-256 key of a vault file.
func deriveFileKey(passphrase []byte, salt [saltSize]byte, p KDFParams) []byte {
	return argon2.IDKey(passphrase, salt[:], p.Time, p.MemoryKiB, p.Threads, fileKeySize)
}

// newGCM returns AES-256-GCM under key.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// fileHeader is the authenticated, unencrypted part of a vault file.
type fileHeader struct {
	params     KDFParams
	salt       [saltSize]byte
	nonce      [nonceSize]byte
	keyVersion uint32
}

// appendTo appends the encoded header (fileHeaderSize bytes) to b.
func (h *fileHeader) appendTo(b []byte) []byte {
	b = append(b, fileMagic...)
	b = append(b, fileFormatVersion)
	b = binary.BigEndian.AppendUint32(b, h.params.Time)
	b = binary.BigEndian.AppendUint32(b, h.params.MemoryKiB)
	b = append(b, h.params.Threads)
	b = append(b, h.salt[:]...)
	b = append(b, h.nonce[:]...)
	b = binary.BigEndian.AppendUint32(b, h.keyVersion)
	return b
}

// decodeFile parses a whole vault file. It checks the layout and the ranges
// of every field but does not decrypt; sealed is the ciphertext and tag,
// aliasing b. Every error matches ErrInvalidFile.
func decodeFile(b []byte) (h fileHeader, sealed []byte, err error) {
	if !bytes.HasPrefix(b, []byte(fileMagic)) {
		if len(b) < len(fileMagic) && bytes.HasPrefix([]byte(fileMagic), b) {
			return h, nil, fmt.Errorf("%w: truncated header (%d bytes, want %d)", ErrInvalidFile, len(b), fileSize)
		}
		return h, nil, fmt.Errorf("%w: not a vault file (bad magic)", ErrInvalidFile)
	}
	if len(b) <= offVersion {
		return h, nil, fmt.Errorf("%w: truncated header (%d bytes, want %d)", ErrInvalidFile, len(b), fileSize)
	}
	if v := b[offVersion]; v != fileFormatVersion {
		return h, nil, fmt.Errorf("%w: unsupported format version %d (this build reads version %d)", ErrInvalidFile, v, fileFormatVersion)
	}
	if len(b) < fileHeaderSize {
		return h, nil, fmt.Errorf("%w: truncated header (%d bytes, want %d)", ErrInvalidFile, len(b), fileSize)
	}
	h.params = KDFParams{
		Time:      binary.BigEndian.Uint32(b[offTime:]),
		MemoryKiB: binary.BigEndian.Uint32(b[offMemory:]),
		Threads:   b[offThreads],
	}
	if err := h.params.Validate(); err != nil {
		return h, nil, fmt.Errorf("%w: %w", ErrInvalidFile, err)
	}
	copy(h.salt[:], b[offSalt:])
	copy(h.nonce[:], b[offNonce:])
	h.keyVersion = binary.BigEndian.Uint32(b[offKeyVersion:])
	if h.keyVersion > MaxKeyVersion {
		return h, nil, fmt.Errorf("%w: key version %d out of range 0..%d", ErrInvalidFile, h.keyVersion, MaxKeyVersion)
	}
	switch {
	case len(b) < fileSize:
		return h, nil, fmt.Errorf("%w: truncated sealed seed (%d bytes, want %d)", ErrInvalidFile, len(b), fileSize)
	case len(b) > fileSize:
		return h, nil, fmt.Errorf("%w: trailing data (%d bytes, want %d)", ErrInvalidFile, len(b), fileSize)
	}
	return h, b[fileHeaderSize:], nil
}

// Vault is an unlocked vault file: the seed, the key that seals the file
// (so the file can be rewritten without asking for the passphrase again)
// and the current secret-key version. Its methods are safe for concurrent
// use. [Vault.Close] wipes the secrets; afterwards methods return
// [ErrClosed].
//
// A Vault assumes it is the only writer of its file while open; there is no
// file locking.
type Vault struct {
	path string // immutable

	mu         sync.Mutex
	seed       []byte // SeedSize bytes; nil once closed
	fileKey    []byte // Argon2id output sealing the file
	salt       [saltSize]byte
	params     KDFParams
	keyVersion uint32
	secretKey  []byte // AES key for keyVersion, derived on first use; see secrets.go
}

// Create writes a new vault file at path holding seed (which must be
// [SeedSize] bytes) sealed under passphrase, and returns it unlocked. The
// zero params means [DefaultKDFParams]; other params must pass
// [KDFParams.Validate]. The initial secret-key version is 0. Create refuses
// to replace an existing file: the error then matches [fs.ErrExist].
//
// The file is written atomically with mode 0600: a temporary file in the
// same directory is written and synced, then linked (or, where hard links
// are unsupported, renamed) into place, and the directory is synced.
//
// File format version 1 is 130 bytes, integers big-endian:
//
//	offset size field
//	     0    8 magic "ALKNETV\x00"
//	     8    1 format version, 0x01
//	     9    4 Argon2id time (passes), 1..100
//	    13    4 Argon2id memory in KiB, 8×threads..4194304
//	    17    1 Argon2id threads (lanes), 1..255
//	    18   16 Argon2id salt, random per passphrase
//	    34   12 AES-GCM nonce, random per write
//	    46    4 current secret-key version, 0..2^31-1
//	    50   80 AES-256-GCM ciphertext of the 64-byte seed, then the 16-byte tag
//
// The AES-256 key is Argon2id(passphrase, salt, time, memory, threads), 32
// bytes; bytes 0..49 are the GCM additional data, so any change to the
// header fails authentication.
func Create(path string, seed, passphrase []byte, params KDFParams) (*Vault, error) {
	if len(seed) != SeedSize {
		return nil, fmt.Errorf("vault: create %s: seed is %d bytes, want %d", path, len(seed), SeedSize)
	}
	params = params.orDefault()
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("vault: create %s: %w", path, err)
	}
	if exists, err := Exists(path); err != nil {
		return nil, fmt.Errorf("vault: create %s: %w", path, err)
	} else if exists {
		return nil, fmt.Errorf("vault: create %s: %w", path, fs.ErrExist)
	}
	v := &Vault{path: path, seed: bytes.Clone(seed), params: params}
	_, _ = rand.Read(v.salt[:])
	v.fileKey = deriveFileKey(passphrase, v.salt, params)
	data, err := sealFile(v.fileKey, v.salt, params, 0, v.seed)
	if err == nil {
		err = writeFileAtomic(path, data, false)
	}
	if err != nil {
		v.Close()
		return nil, fmt.Errorf("vault: create %s: %w", path, err)
	}
	return v, nil
}

// Load reads the vault file at path and unlocks it with passphrase. A file
// that is not a readable vault file gives an error matching
// [ErrInvalidFile] and naming the problem; a well-formed file that does not
// decrypt gives an error matching [ErrWrongPassphrase]. Both name the file.
// Load never panics, whatever the file holds, and refuses KDF parameters
// outside the ranges of [KDFParams.Validate] before running Argon2id. A file
// its group or others may read or write is refused with an error matching
// [ErrInsecureMode] before it is read.
func Load(path string, passphrase []byte) (*Vault, error) {
	data, err := readFileLimited(path)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	h, sealed, err := decodeFile(data)
	if err != nil {
		return nil, fmt.Errorf("vault: %s: %w", path, err)
	}
	key := deriveFileKey(passphrase, h.salt, h.params)
	aead, err := newGCM(key)
	if err != nil {
		wipe(key)
		return nil, fmt.Errorf("vault: %s: %w", path, err)
	}
	seed, err := aead.Open(nil, h.nonce[:], sealed, h.appendTo(nil))
	if err != nil {
		wipe(key)
		return nil, fmt.Errorf("vault: %s: %w", path, ErrWrongPassphrase)
	}
	return &Vault{
		path:       path,
		seed:       seed,
		fileKey:    key,
		salt:       h.salt,
		params:     h.params,
		keyVersion: h.keyVersion,
	}, nil
}

// Exists reports whether something exists at path (without following a
// final symbolic link). Errors other than "does not exist" are returned.
func Exists(path string) (bool, error) {
	_, err := os.Lstat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, err
	}
}

// sealFile encodes a complete vault file sealing seed under key with a fresh
// nonce.
func sealFile(key []byte, salt [saltSize]byte, params KDFParams, keyVersion uint32, seed []byte) ([]byte, error) {
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	h := fileHeader{params: params, salt: salt, keyVersion: keyVersion}
	_, _ = rand.Read(h.nonce[:])
	header := h.appendTo(make([]byte, 0, fileHeaderSize))
	out := append(make([]byte, 0, fileSize), header...)
	return aead.Seal(out, h.nonce[:], seed, header), nil
}

// readFileLimited reads the file at path, refusing files larger than
// maxFileRead and files whose mode lets others at them (ErrInsecureMode).
func readFileLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if runtime.GOOS != "windows" {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("%s: %w: mode %#o lets others read or replace the node's key; run: chmod 600 %s", path, ErrInsecureMode, perm, path)
		}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileRead+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileRead {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes (a vault file is %d)", path, ErrInvalidFile, maxFileRead, fileSize)
	}
	return data, nil
}

// writeFileAtomic puts data at path with mode 0600 so that path holds either
// its old content or all of data, never a mix: it writes and syncs a
// temporary file in the same directory, moves it into place and syncs the
// directory. With overwrite false an existing file at path is an error
// matching fs.ErrExist, decided atomically where the file system has hard
// links.
func writeFileAtomic(path string, data []byte, overwrite bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // may already be closed; the first error is the one to report
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if overwrite {
		err = os.Rename(tmp, path)
	} else {
		err = publishNew(tmp, path)
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// publishNew moves tmp to path unless path exists. os.Link fails atomically
// if path exists; on file systems without hard links it falls back to a
// check followed by a rename, which is racy but only against another
// process creating the same file at the same moment.
func publishNew(tmp, path string) error {
	lerr := os.Link(tmp, path)
	if lerr == nil {
		// path now holds the data; a leftover temporary file only holds the
		// same sealed bytes, so failing to remove it is not worth failing for.
		_ = os.Remove(tmp)
		return nil
	}
	if errors.Is(lerr, fs.ErrExist) {
		return fs.ErrExist
	}
	exists, err := Exists(path)
	if err != nil {
		return err
	}
	if exists {
		return fs.ErrExist
	}
	return os.Rename(tmp, path)
}

// syncDir flushes the directory entry changes in dir to stable storage.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Path returns the path of the vault file, as given to [Create] or [Load].
func (v *Vault) Path() string {
	return v.path
}

// Seed returns a copy of the 64-byte seed, or nil after [Vault.Close]. The
// caller owns the copy and should wipe it when done.
func (v *Vault) Seed() []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	return bytes.Clone(v.seed)
}

// Derive returns the SLIP-0010 Ed25519 key at p (see [DeriveEd25519]). The
// caller owns the Key and should [Key.Wipe] it when done.
func (v *Vault) Derive(p Path) (Key, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seed == nil {
		return Key{}, ErrClosed
	}
	return DeriveEd25519(v.seed, p)
}

// NodeKey returns the node identity key, derived at [NodeKeyPath]. The
// caller owns the returned slice and should wipe it when done.
func (v *Vault) NodeKey() (ed25519.PrivateKey, error) {
	k, err := v.Derive(NodeKeyPath())
	if err != nil {
		return nil, err
	}
	defer k.Wipe()
	return k.PrivateKey(), nil
}

// ChangePassphrase re-seals the vault file under newPass with a fresh salt
// and nonce and the given KDF parameters (zero means [DefaultKDFParams]),
// replacing the file atomically. On error the file and the Vault are
// unchanged.
func (v *Vault) ChangePassphrase(newPass []byte, params KDFParams) error {
	params = params.orDefault()
	if err := params.Validate(); err != nil {
		return fmt.Errorf("vault: change passphrase of %s: %w", v.path, err)
	}
	if v.isClosed() {
		return ErrClosed
	}
	var salt [saltSize]byte
	_, _ = rand.Read(salt[:])
	key := deriveFileKey(newPass, salt, params) // slow; done without holding the lock

	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seed == nil {
		wipe(key)
		return ErrClosed
	}
	data, err := sealFile(key, salt, params, v.keyVersion, v.seed)
	if err == nil {
		err = writeFileAtomic(v.path, data, true)
	}
	if err != nil {
		wipe(key)
		return fmt.Errorf("vault: change passphrase of %s: %w", v.path, err)
	}
	wipe(v.fileKey)
	v.fileKey, v.salt, v.params = key, salt, params
	return nil
}

// isClosed reports whether Close has run.
func (v *Vault) isClosed() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.seed == nil
}

// Close wipes the seed, the file key and every cached derived key. It is
// idempotent; afterwards the other methods return [ErrClosed] (or nil, where
// they return no error).
func (v *Vault) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	wipe(v.seed)
	wipe(v.fileKey)
	wipe(v.secretKey)
	v.seed, v.fileKey, v.secretKey = nil, nil, nil
}
