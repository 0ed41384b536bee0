package sphinx

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"testing"
)

// TestX25519Vectors checks x25519 against RFC 7748 §5.2: the first test
// vector and the iterated function after 1 and 1000 iterations.
func TestX25519Vectors(t *testing.T) {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	got, err := x25519(unhex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4"),
		unhex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c"))
	if err != nil || !bytes.Equal(got, unhex("c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")) {
		t.Fatalf("vector 1: %x, %v", got, err)
	}
	k, u := make([]byte, 32), make([]byte, 32)
	k[0], u[0] = 9, 9
	for i := 1; i <= 1000; i++ {
		next, err := x25519(k, u)
		if err != nil {
			t.Fatal(err)
		}
		k, u = next, k
		switch i {
		case 1:
			if want := unhex("422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079"); !bytes.Equal(k, want) {
				t.Fatalf("1 iteration: %x", k)
			}
		case 1000:
			if want := unhex("684cf59ba83309552800ef566f2f4d3c1c3887c49360e3875f2eb94d99532c51"); !bytes.Equal(k, want) {
				t.Fatalf("1000 iterations: %x", k)
			}
		}
	}
}

// TestX25519MatchesECDH checks x25519 against crypto/ecdh on random keys,
// and that both refuse a low-order point.
func TestX25519MatchesECDH(t *testing.T) {
	for range 200 {
		a, _ := ecdh.X25519().GenerateKey(rand.Reader)
		b, _ := ecdh.X25519().GenerateKey(rand.Reader)
		want, err := a.ECDH(b.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		got, err := x25519(a.Bytes(), b.PublicKey().Bytes())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("x25519 = %x, %v; crypto/ecdh %x", got, err, want)
		}
	}
	a, _ := ecdh.X25519().GenerateKey(rand.Reader)
	lowOrder := make([]byte, 32) // 0, of order 1
	if got, err := x25519(a.Bytes(), lowOrder); err == nil {
		t.Fatalf("low-order point: %x, want an error", got)
	}
}
