package vault

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// testParams keeps Argon2id fast in tests; never use them for real files.
var testParams = KDFParams{Time: 1, MemoryKiB: 1024, Threads: 1}

// testSeed returns a fixed 64-byte seed.
func testSeed(t testing.TB) []byte {
	t.Helper()
	return mustHex(t, trezorSeed)
}

// createTestVault creates a vault file in a new temporary directory.
func createTestVault(t testing.TB, pass string) *Vault {
	t.Helper()
	v, err := Create(filepath.Join(t.TempDir(), "node.vault"), testSeed(t), []byte(pass), testParams)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// readFile returns the content of path or fails the test.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateLoad(t *testing.T) {
	v := createTestVault(t, "correct horse")
	if got := v.Seed(); !bytes.Equal(got, testSeed(t)) {
		t.Errorf("Seed() after Create = %x", got)
	}
	data := readFile(t, v.Path())
	if len(data) != fileSize || !bytes.HasPrefix(data, []byte("ALKNETV\x00\x01")) {
		t.Fatalf("file is %d bytes starting %q, want %d bytes starting with magic and version 1", len(data), data[:min(len(data), 9)], fileSize)
	}
	info, err := os.Stat(v.Path())
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode = %o, want 600", mode)
	}
	assertOnlyFile(t, v.Path())

	w, err := Load(v.Path(), []byte("correct horse"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer w.Close()
	if got := w.Seed(); !bytes.Equal(got, testSeed(t)) {
		t.Errorf("Seed() after Load = %x", got)
	}
	if w.KeyVersion() != 0 || w.Path() != v.Path() {
		t.Errorf("Load: KeyVersion %d, Path %q; want 0, %q", w.KeyVersion(), w.Path(), v.Path())
	}
	nk, err := w.NodeKey()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := nk.Seed(), mustHex(t, "e117f294354ddd753d53484687ab2a95b99ac1c53ecf6879b2c88f9e0cbc371d"); !bytes.Equal(got, want) {
		t.Errorf("NodeKey seed = %x, want %x", got, want)
	}
}

// assertOnlyFile fails unless path is the only entry of its directory (no
// temporary file was left behind).
func assertOnlyFile(t testing.TB, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(path) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v, want only %s", names, filepath.Base(path))
	}
}

func TestCreateRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.vault")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Create(path, testSeed(t), []byte("x"), testParams)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Create over existing file: err = %v, want fs.ErrExist naming %s", err, path)
	}
	if got := readFile(t, path); string(got) != "precious" {
		t.Errorf("existing file changed to %q", got)
	}
	assertOnlyFile(t, path)

	// The race-free check at the end: the file appears after the early check.
	path2 := filepath.Join(t.TempDir(), "node.vault")
	if err := writeFileAtomic(path2, []byte("first"), false); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(path2, []byte("second"), false); !errors.Is(err, fs.ErrExist) {
		t.Errorf("writeFileAtomic without overwrite over existing file: %v, want fs.ErrExist", err)
	}
	if got := readFile(t, path2); string(got) != "first" {
		t.Errorf("file content %q, want first", got)
	}
	assertOnlyFile(t, path2)
}

func TestCreateRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		seed    []byte
		params  KDFParams
		wantErr string
	}{
		{"short seed", make([]byte, 32), testParams, "seed is 32 bytes"},
		{"nil seed", nil, testParams, "seed is 0 bytes"},
		{"time 0", make([]byte, 64), KDFParams{Time: 0, MemoryKiB: 1024, Threads: 1}, "Time 0"},
		{"time 101", make([]byte, 64), KDFParams{Time: 101, MemoryKiB: 1024, Threads: 1}, "Time 101"},
		{"threads 0", make([]byte, 64), KDFParams{Time: 1, MemoryKiB: 1024, Threads: 0}, "Threads 0"},
		{"memory below 8 per thread", make([]byte, 64), KDFParams{Time: 1, MemoryKiB: 15, Threads: 2}, "MemoryKiB 15"},
		{"memory above 4 GiB", make([]byte, 64), KDFParams{Time: 1, MemoryKiB: 4<<20 + 1, Threads: 1}, "MemoryKiB 4194305"},
		{"all bad at once", make([]byte, 64), KDFParams{Time: 500, MemoryKiB: 1}, "Time 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_"))
			_, err := Create(path, tt.seed, []byte("x"), tt.params)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "vault: create ") {
				t.Errorf("Create error = %v, want \"vault: create\" prefix and %q", err, tt.wantErr)
			}
			if exists, _ := Exists(path); exists {
				t.Errorf("Create failed but left %s", path)
			}
		})
	}
	if err := (KDFParams{Time: 500, MemoryKiB: 1}).Validate(); err == nil || !strings.Contains(err.Error(), "Threads 0") || !strings.Contains(err.Error(), "MemoryKiB 1") {
		t.Errorf("Validate does not report every bad field: %v", err)
	}
	if err := DefaultKDFParams().Validate(); err != nil {
		t.Errorf("DefaultKDFParams invalid: %v", err)
	}
}

func TestLoadWrongPassphrase(t *testing.T) {
	v := createTestVault(t, "right")
	_, err := Load(v.Path(), []byte("wrong"))
	if !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("Load with wrong passphrase: %v, want ErrWrongPassphrase", err)
	}
	if want := "vault: " + v.Path() + ": wrong passphrase"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want prefix %q", err, want)
	}
	if errors.Is(err, ErrInvalidFile) {
		t.Errorf("wrong passphrase also matches ErrInvalidFile: %v", err)
	}
}

func TestLoadCorrupted(t *testing.T) {
	v := createTestVault(t, "pass")
	good := readFile(t, v.Path())
	dir := t.TempDir()
	regions := []struct {
		name       string
		start, end int
		want       error // nil: either ErrInvalidFile or ErrWrongPassphrase
	}{
		{"magic", 0, 8, ErrInvalidFile},
		{"format version", 8, 9, ErrInvalidFile},
		{"kdf time", 9, 13, ErrInvalidFile},         // 1 becomes 0 or > 100
		{"kdf memory", 13, 17, nil},                 // some flips stay in range and only fail to decrypt
		{"kdf threads", 17, 18, ErrInvalidFile},     // 1 becomes 0
		{"salt", 18, 34, ErrWrongPassphrase},        // other key
		{"nonce", 34, 46, ErrWrongPassphrase},       // authenticated
		{"key version", 46, 50, ErrWrongPassphrase}, // authenticated header
		{"ciphertext and tag", 50, fileSize, ErrWrongPassphrase},
	}
	for _, r := range regions {
		t.Run(r.name, func(t *testing.T) {
			for i := r.start; i < r.end; i++ {
				bad := bytes.Clone(good)
				bad[i] ^= 0x01 // one bit flip; keeps in-range memory flips small
				path := filepath.Join(dir, "corrupt.vault")
				if err := os.WriteFile(path, bad, 0o600); err != nil {
					t.Fatal(err)
				}
				w, err := Load(path, []byte("pass"))
				if err == nil {
					w.Close()
					t.Fatalf("byte %d flipped: Load succeeded", i)
				}
				if !strings.Contains(err.Error(), path) {
					t.Errorf("byte %d flipped: error %q does not name the file", i, err)
				}
				switch {
				case r.want != nil && !errors.Is(err, r.want):
					t.Errorf("byte %d flipped: %v, want %v", i, err, r.want)
				case r.want == nil && !errors.Is(err, ErrInvalidFile) && !errors.Is(err, ErrWrongPassphrase):
					t.Errorf("byte %d flipped: unexpected error %v", i, err)
				}
			}
		})
	}
}

func TestLoadTruncatedAndGarbage(t *testing.T) {
	v := createTestVault(t, "pass")
	good := readFile(t, v.Path())
	dir := t.TempDir()
	tests := []struct {
		name    string
		data    []byte
		wantErr string
	}{
		{"empty", nil, "truncated header (0 bytes"},
		{"magic prefix", good[:5], "truncated header (5 bytes"},
		{"magic only", good[:8], "truncated header (8 bytes"},
		{"half header", good[:30], "truncated header (30 bytes"},
		{"header only", good[:fileHeaderSize], "truncated sealed seed (50 bytes"},
		{"one byte short", good[:fileSize-1], "truncated sealed seed (129 bytes"},
		{"one byte extra", append(bytes.Clone(good), 0), "trailing data (131 bytes"},
		{"text file", []byte("hello, this is not a vault\n"), "bad magic"},
		{"short garbage", []byte{0xff}, "bad magic"},
		{"future format", append([]byte("ALKNETV\x00\x02"), good[9:]...), "unsupported format version 2"},
		{"huge memory", withUint32(good, offMemory, 0xffffffff), "MemoryKiB 4294967295"},
		{"huge time", withUint32(good, offTime, 1<<31), "Time 2147483648"},
		{"key version out of range", withUint32(good, offKeyVersion, 1<<31), "key version 2147483648"},
		{"oversized file", make([]byte, maxFileRead+1), "larger than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.vault")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(path, []byte("pass"))
			if !errors.Is(err, ErrInvalidFile) || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("Load = %v, want ErrInvalidFile naming %s and %q", err, path, tt.wantErr)
			}
		})
	}
	_, err := Load(filepath.Join(dir, "missing.vault"), []byte("pass"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "vault: ") {
		t.Errorf("Load of missing file = %v, want fs.ErrNotExist with vault: prefix", err)
	}
}

// withUint32 returns a copy of b with the big-endian n written at off.
func withUint32(b []byte, off int, n uint32) []byte {
	c := bytes.Clone(b)
	binary.BigEndian.PutUint32(c[off:], n)
	return c
}

func TestChangePassphrase(t *testing.T) {
	v := createTestVault(t, "old")
	if _, err := v.RotateKey(); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, v.Path())
	newParams := KDFParams{Time: 2, MemoryKiB: 2048, Threads: 2}
	if err := v.ChangePassphrase([]byte("new"), newParams); err != nil {
		t.Fatalf("ChangePassphrase: %v", err)
	}
	after := readFile(t, v.Path())
	if bytes.Equal(before[offSalt:offNonce], after[offSalt:offNonce]) || bytes.Equal(before[offNonce:offKeyVersion], after[offNonce:offKeyVersion]) {
		t.Error("ChangePassphrase kept the salt or the nonce")
	}
	h, _, err := decodeFile(after)
	if err != nil {
		t.Fatal(err)
	}
	if h.params != newParams || h.keyVersion != 1 {
		t.Errorf("rewritten header has params %+v, key version %d; want %+v, 1", h.params, h.keyVersion, newParams)
	}
	info, err := os.Stat(v.Path())
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("file mode after ChangePassphrase = %o, want 600", mode)
	}
	assertOnlyFile(t, v.Path())

	if _, err := Load(v.Path(), []byte("old")); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("Load with old passphrase: %v, want ErrWrongPassphrase", err)
	}
	w, err := Load(v.Path(), []byte("new"))
	if err != nil {
		t.Fatalf("Load with new passphrase: %v", err)
	}
	defer w.Close()
	if !bytes.Equal(w.Seed(), testSeed(t)) || w.KeyVersion() != 1 {
		t.Errorf("after ChangePassphrase: seed %x, key version %d", w.Seed(), w.KeyVersion())
	}

	// The Vault keeps working with its new key: rotate once more and reload.
	if _, err := v.RotateKey(); err != nil {
		t.Fatal(err)
	}
	x, err := Load(v.Path(), []byte("new"))
	if err != nil {
		t.Fatalf("Load after ChangePassphrase and RotateKey: %v", err)
	}
	defer x.Close()
	if x.KeyVersion() != 2 {
		t.Errorf("KeyVersion = %d, want 2", x.KeyVersion())
	}

	if err := v.ChangePassphrase([]byte("x"), KDFParams{Time: 1000, MemoryKiB: 1024, Threads: 1}); err == nil {
		t.Error("ChangePassphrase accepted Time 1000")
	}
}

func TestClose(t *testing.T) {
	v := createTestVault(t, "pass")
	ct, err := v.Seal([]byte("s"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	v.Close() // idempotent
	if v.Seed() != nil {
		t.Error("Seed() after Close is not nil")
	}
	checks := map[string]error{}
	_, checks["Derive"] = v.Derive(NodeKeyPath())
	_, checks["NodeKey"] = v.NodeKey()
	_, checks["Seal"] = v.Seal([]byte("s"), nil)
	_, checks["Open"] = v.Open(ct, nil)
	_, checks["Rotate"] = v.Rotate(ct, nil)
	_, checks["RotateKey"] = v.RotateKey()
	checks["ChangePassphrase"] = v.ChangePassphrase([]byte("x"), testParams)
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestExists(t *testing.T) {
	dir := t.TempDir()
	if ok, err := Exists(filepath.Join(dir, "none")); ok || err != nil {
		t.Errorf("Exists(missing) = %v, %v", ok, err)
	}
	if ok, err := Exists(dir); !ok || err != nil {
		t.Errorf("Exists(dir) = %v, %v", ok, err)
	}
}

// validFile returns a well-formed vault file sealing seed under a fixed key
// (no Argon2id run), for the fuzz corpus.
func validFile(t testing.TB, keyVersion uint32) []byte {
	t.Helper()
	var salt [saltSize]byte
	b, err := sealFile(make([]byte, fileKeySize), salt, testParams, keyVersion, testSeed(t))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzDecodeFile(f *testing.F) {
	good := validFile(f, 0)
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x80; return b }
	f.Add(good)                                     // valid file, key version 0
	f.Add(validFile(f, 7))                          // valid file, key version 7
	f.Add([]byte{})                                 // empty
	f.Add(good[:4])                                 // truncated inside the magic
	f.Add(good[:fileHeaderSize-1])                  // truncated header
	f.Add(good[:fileSize-1])                        // truncated sealed seed
	f.Add(append(bytes.Clone(good), 0xff))          // trailing byte
	f.Add([]byte("ALKNETW\x00" + string(good[8:]))) // wrong magic
	f.Add(flip(offVersion))                         // format version 0x81
	f.Add(flip(offTime))                            // time 2^31+1
	f.Add(flip(offMemory))                          // memory above 4 GiB
	f.Add(flip(offThreads))                         // threads 129 with 1 MiB: memory too small
	f.Add(flip(offKeyVersion))                      // key version above 2^31-1
	f.Add(flip(fileSize - 1))                       // tag bit flip: decodes, fails only GCM
	f.Fuzz(func(t *testing.T, b []byte) {
		h, sealed, err := decodeFile(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidFile) {
				t.Fatalf("decodeFile error %v does not match ErrInvalidFile", err)
			}
			return
		}
		if err := h.params.Validate(); err != nil {
			t.Fatalf("decodeFile accepted invalid params: %v", err)
		}
		// Decoding is exact: re-encoding gives the input back, so the
		// header used as additional data on Load is the one on disk.
		if re := append(h.appendTo(nil), sealed...); !bytes.Equal(re, b) {
			t.Fatalf("re-encoded file differs:\n in  %x\n out %x", b, re)
		}
	})
}

// BenchmarkLoadDefaultParams measures unlocking a vault file written with
// DefaultKDFParams, the figure DefaultKDFParams documents.
func BenchmarkLoadDefaultParams(b *testing.B) {
	path := filepath.Join(b.TempDir(), "node.vault")
	v, err := Create(path, testSeed(b), []byte("pass"), KDFParams{})
	if err != nil {
		b.Fatal(err)
	}
	v.Close()
	for b.Loop() {
		w, err := Load(path, []byte("pass"))
		if err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}

// TestUnprotectedKDFParams checks that the parameters for an empty
// passphrase are valid and make a vault that loads.
func TestUnprotectedKDFParams(t *testing.T) {
	p := UnprotectedKDFParams()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vault")
	v, err := Create(path, testSeed(t), nil, p)
	if err != nil {
		t.Fatal(err)
	}
	v.Close()
	w, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if !bytes.Equal(w.Seed(), testSeed(t)) {
		t.Error("seed changed")
	}
}

func TestLoadRefusesOpenPermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("mode bits are not access control on Windows")
	}
	v := createTestVault(t, "pass")
	tests := []struct {
		mode fs.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o644, false}, // the usual umask 022 copy
		{0o640, false}, // group-readable
		{0o604, false}, // world-readable
		{0o620, false}, // group-writable
		{0o602, false}, // world-writable
		{0o666, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%#o", tt.mode), func(t *testing.T) {
			if err := os.Chmod(v.Path(), tt.mode); err != nil {
				t.Fatal(err)
			}
			w, err := Load(v.Path(), []byte("pass"))
			if tt.ok {
				if err != nil {
					t.Fatalf("Load at %#o: %v", tt.mode, err)
				}
				w.Close()
				return
			}
			if err == nil {
				w.Close()
				t.Fatalf("Load at %#o succeeded, want ErrInsecureMode", tt.mode)
			}
			fix := "chmod 600 " + v.Path()
			if !errors.Is(err, ErrInsecureMode) || !strings.Contains(err.Error(), fix) || !strings.Contains(err.Error(), fmt.Sprintf("%#o", tt.mode)) {
				t.Errorf("Load at %#o = %v, want ErrInsecureMode with the mode and %q", tt.mode, err, fix)
			}
		})
	}
}
