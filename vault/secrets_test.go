package vault

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestSealOpen(t *testing.T) {
	v := createTestVault(t, "pass")
	tests := []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty plaintext, no aad", nil, nil},
		{"short with aad", []byte("hunter2"), []byte("provider=github")},
		{"binary", []byte{0, 1, 2, 0xff}, []byte{0}},
		{"64 KiB", bytes.Repeat([]byte("x"), 64<<10), []byte("big")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, err := v.Seal(tt.plaintext, tt.aad)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			if len(ct) != secretHeaderSize+len(tt.plaintext)+tagSize || !bytes.HasPrefix(ct, []byte("ALKS\x01\x00\x00\x00\x00")) {
				t.Fatalf("ciphertext %d bytes starting %x", len(ct), ct[:min(len(ct), 9)])
			}
			pt, err := v.Open(ct, tt.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(pt, tt.plaintext) {
				t.Errorf("Open = %q, want %q", pt, tt.plaintext)
			}
			ct2, err := v.Seal(tt.plaintext, tt.aad)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(ct, ct2) {
				t.Error("two Seals of the same plaintext are equal (nonce reuse)")
			}
			if _, err := v.Open(ct, append(bytes.Clone(tt.aad), 'x')); !errors.Is(err, ErrDecrypt) {
				t.Errorf("Open with wrong aad: %v, want ErrDecrypt", err)
			}
		})
	}
}

func TestSecretKeyKnownAnswer(t *testing.T) {
	// AES keys computed independently with Python (hmac, hashlib and the
	// cryptography package's HKDF) from the BIP39 "TREZOR" seed.
	for version, want := range map[uint32]string{
		0: "1a418995800474f59ece1a5baa1e334f345c4e5cce8ce1207c15f48771e6f60a",
		1: "0ce3d10e852c5ff9f31eeadfcc8d30b1dcbcefd74e7e74fd74451f5b33ac47f8",
	} {
		key, err := deriveSecretKey(testSeed(t), version)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustHex(t, want); !bytes.Equal(key, got) {
			t.Errorf("secret key v%d = %x, want %s", version, key, want)
		}
	}
}

func TestOpenTampered(t *testing.T) {
	v := createTestVault(t, "pass")
	ct, err := v.Seal([]byte("secret value"), []byte("name"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range ct {
		bad := bytes.Clone(ct)
		bad[i] ^= 0x01
		_, err := v.Open(bad, []byte("name"))
		var want string
		switch {
		case i < offSecretVersion:
			want = "bad magic"
		case i == offSecretVersion:
			want = "unsupported format version 0"
		case i < offSecretNonce:
			want = "newer than the vault's current version 0"
		default:
			if !errors.Is(err, ErrDecrypt) {
				t.Errorf("byte %d flipped: %v, want ErrDecrypt", i, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("byte %d flipped: %v, want %q", i, err, want)
		}
	}
}

func TestOpenMalformed(t *testing.T) {
	v := createTestVault(t, "pass")
	good, err := v.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	withVersion := func(n uint32) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint32(b[offSecretKeyVersion:], n)
		return b
	}
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"nil", nil, "0 bytes, want at least 37"},
		{"header only", good[:secretHeaderSize], "21 bytes"},
		{"one byte short of a tag", good[:minSecretSize-1], "36 bytes"},
		{"wrong magic", append([]byte("ALKX"), good[4:]...), "bad magic"},
		{"vault file magic", append([]byte("ALKN"), good[4:]...), "bad magic"},
		{"format version 2", append([]byte("ALKS\x02"), good[5:]...), "unsupported format version 2"},
		{"key version 2^31", withVersion(1 << 31), "key version 2147483648 out of range"},
		{"key version max", withVersion(0xffffffff), "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Open(tt.in, nil)
			if !errors.Is(err, ErrMalformedCiphertext) || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(err.Error(), "vault: open: ") {
				t.Errorf("Open = %v, want ErrMalformedCiphertext with %q", err, tt.wantErr)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	v := createTestVault(t, "pass")
	stale, err := Load(v.Path(), []byte("pass")) // loaded before the rotation
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()

	aad := []byte("github")
	ct0, err := v.Seal([]byte("token-0"), aad)
	if err != nil {
		t.Fatal(err)
	}
	next, err := v.RotateKey()
	if err != nil || next != 1 || v.KeyVersion() != 1 {
		t.Fatalf("RotateKey = %d, %v; KeyVersion %d; want 1", next, err, v.KeyVersion())
	}
	assertOnlyFile(t, v.Path())
	ct1, err := v.Seal([]byte("token-1"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint32(ct1[offSecretKeyVersion:]); got != 1 {
		t.Errorf("ciphertext after RotateKey has key version %d, want 1", got)
	}
	for name, c := range map[string][]byte{"v0": ct0, "v1": ct1} {
		if _, err := v.Open(c, aad); err != nil {
			t.Errorf("Open %s after RotateKey: %v", name, err)
		}
	}
	// v1 is sealed under a different key than v0: relabelled as v0 it fails.
	relabelled := bytes.Clone(ct1)
	binary.BigEndian.PutUint32(relabelled[offSecretKeyVersion:], 0)
	if _, err := v.Open(relabelled, aad); !errors.Is(err, ErrDecrypt) {
		t.Errorf("v1 ciphertext relabelled v0: %v, want ErrDecrypt", err)
	}

	rotated, err := v.Rotate(ct0, aad)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if got := binary.BigEndian.Uint32(rotated[offSecretKeyVersion:]); got != 1 {
		t.Errorf("Rotate produced key version %d, want 1", got)
	}
	if pt, err := v.Open(rotated, aad); err != nil || string(pt) != "token-0" {
		t.Errorf("Open(Rotate(ct0)) = %q, %v; want token-0", pt, err)
	}
	if _, err := v.Rotate(ct0, []byte("other")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Rotate with wrong aad: %v, want ErrDecrypt", err)
	}

	// The stale Vault still has version 0: it refuses v1 and opens v0.
	if _, err := stale.Open(ct1, aad); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("stale Open of v1 = %v, want newer-version error", err)
	}
	if _, err := stale.Open(ct0, aad); err != nil {
		t.Errorf("stale Open of v0: %v", err)
	}

	// The version is persisted.
	w, err := Load(v.Path(), []byte("pass"))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.KeyVersion() != 1 {
		t.Errorf("KeyVersion after reload = %d, want 1", w.KeyVersion())
	}
	for name, c := range map[string][]byte{"v0": ct0, "v1": ct1, "rotated": rotated} {
		if _, err := w.Open(c, aad); err != nil {
			t.Errorf("reloaded Open %s: %v", name, err)
		}
	}
}

func TestRotateKeyAtMax(t *testing.T) {
	v := createTestVault(t, "pass")
	v.mu.Lock()
	v.keyVersion = MaxKeyVersion
	v.mu.Unlock()
	if _, err := v.RotateKey(); err == nil || !strings.Contains(err.Error(), "last one") {
		t.Errorf("RotateKey at MaxKeyVersion = %v, want error", err)
	}
}

func TestConcurrentSeal(t *testing.T) {
	v := createTestVault(t, "pass")
	const workers, perWorker = 4, 25
	results := make([][][]byte, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				ct, err := v.Seal([]byte{byte(w), byte(i)}, []byte("aad"))
				if err != nil {
					t.Errorf("worker %d Seal: %v", w, err)
					return
				}
				if _, err := v.Open(ct, []byte("aad")); err != nil {
					t.Errorf("worker %d Open: %v", w, err)
				}
				results[w] = append(results[w], ct)
			}
		})
	}
	wg.Go(func() {
		if _, err := v.RotateKey(); err != nil {
			t.Errorf("RotateKey: %v", err)
		}
		_ = v.KeyVersion()
		_ = v.Seed()
	})
	wg.Wait()
	for w, cts := range results {
		for i, ct := range cts {
			pt, err := v.Open(ct, []byte("aad"))
			if err != nil || !bytes.Equal(pt, []byte{byte(w), byte(i)}) {
				t.Errorf("worker %d ciphertext %d: %x, %v", w, i, pt, err)
			}
		}
	}
}

// fuzzVault returns a Vault with no file behind it at key version 1, and
// ciphertexts sealed by it under versions 0 and 1.
func fuzzVault(t testing.TB) (v *Vault, ct0, ct1 []byte) {
	t.Helper()
	v = &Vault{seed: testSeed(t)}
	var err error
	if ct0, err = v.Seal([]byte("version zero"), []byte("aad")); err != nil {
		t.Fatal(err)
	}
	v.keyVersion = 1
	if ct1, err = v.Seal([]byte("version one"), nil); err != nil {
		t.Fatal(err)
	}
	return v, ct0, ct1
}

func FuzzOpenCiphertext(f *testing.F) {
	v, ct0, ct1 := fuzzVault(f)
	flip := func(c []byte, i int) []byte { b := bytes.Clone(c); b[i] ^= 0x01; return b }
	f.Add(ct0, []byte("aad"))                                // valid, key version 0
	f.Add(ct1, []byte(nil))                                  // valid, key version 1
	f.Add(ct1, []byte("aad"))                                // wrong aad
	f.Add([]byte{}, []byte(nil))                             // empty
	f.Add(ct0[:secretHeaderSize], []byte("aad"))             // header only, no tag
	f.Add(ct0[:len(ct0)-1], []byte("aad"))                   // truncated tag
	f.Add(append([]byte("ALKV"), ct0[4:]...), []byte("aad")) // wrong magic
	f.Add(flip(ct0, offSecretVersion), []byte("aad"))        // format version 0
	f.Add(flip(ct0, offSecretKeyVersion), []byte("aad"))     // key version 2^24: newer than current
	f.Add(flip(ct1, offSecretKeyVersion+3), []byte(nil))     // key version 0: wrong key
	f.Add(flip(ct0, offSecretNonce), []byte("aad"))          // nonce bit flip
	f.Add(flip(ct0, len(ct0)-1), []byte("aad"))              // tag bit flip
	f.Fuzz(func(t *testing.T, ct, aad []byte) {
		pt, err := v.Open(ct, aad)
		if err != nil {
			if !errors.Is(err, ErrMalformedCiphertext) && !errors.Is(err, ErrDecrypt) && !strings.Contains(err.Error(), "newer") {
				t.Fatalf("Open: unexpected error %v", err)
			}
			return
		}
		// Whatever opens can be rotated to the current version and opened again.
		re, err := v.Rotate(ct, aad)
		if err != nil {
			t.Fatalf("Rotate of an openable ciphertext: %v", err)
		}
		if pt2, err := v.Open(re, aad); err != nil || !bytes.Equal(pt, pt2) {
			t.Fatalf("Open(Rotate(ct)) = %q, %v; want %q", pt2, err, pt)
		}
	})
}
