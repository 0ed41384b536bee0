package sphinx

import (
	"bytes"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors-v1.txt")

// TestVectors pins the key schedule, LIONESS and a whole 3-hop packet: the
// packet in testdata must keep unwrapping, hop by hop, to the same result.
func TestVectors(t *testing.T) {
	pinned := map[string][]byte{}
	raw, _ := os.ReadFile("testdata/vectors-v1.txt")
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			pinned[k], _ = hex.DecodeString(v)
		}
	}
	got := map[string][]byte{}
	seq := func(n, start int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(start + i)
		}
		return b
	}
	k, err := deriveKeys(seq(32, 0), seq(32, 100))
	if err != nil {
		t.Fatal(err)
	}
	got["keys"] = bytes.Join([][]byte{k.mac[:], k.stream[:], k.lioness[:], k.blinding[:], k.tag[:]}, nil)
	block := seq(PayloadSize, 7)
	lionessEncrypt(&k.lioness, block)
	sum := sha256.Sum256(block)
	got["lioness-sha256"] = sum[:]

	var mixes []testMix
	for i := range 3 {
		key, err := ecdh.X25519().NewPrivateKey(seq(32, 50*i))
		if err != nil {
			t.Fatal(err)
		}
		var m testMix
		m.key, m.hop.Key = key, key.PublicKey()
		copy(m.hop.ID[:], seq(32, 200+i))
		mixes = append(mixes, m)
	}
	var dest [IDSize]byte
	copy(dest[:], seq(32, 9))
	packet, err := NewPacket(route(mixes), dest, []byte("pinned"))
	if err != nil {
		t.Fatal(err)
	}
	got["packet"] = packet
	if *update {
		var out []string
		for _, name := range []string{"keys", "lioness-sha256", "packet"} {
			out = append(out, name+" "+hex.EncodeToString(got[name]))
		}
		os.WriteFile("testdata/vectors-v1.txt", []byte(strings.Join(out, "\n")+"\n"), 0o644)
		return
	}
	for _, name := range []string{"keys", "lioness-sha256"} {
		if !bytes.Equal(got[name], pinned[name]) {
			t.Errorf("%s: got %x, want %x", name, got[name], pinned[name])
		}
	}
	r, err := walk(t, mixes, pinned["packet"])
	if err != nil {
		t.Fatal(err)
	}
	if r.Command != Deliver || r.Next != dest || !bytes.HasPrefix(r.Payload, []byte("pinned\x00")) {
		t.Fatalf("pinned packet unwrapped to %d %x %q", r.Command, r.Next[:4], r.Payload[:8])
	}
}
