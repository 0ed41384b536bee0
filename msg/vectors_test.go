package msg

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// update rewrites the pinned vectors in testdata from this implementation.
var update = flag.Bool("update", false, "rewrite testdata vectors")

// vectorParty is a fixed node: node key seed 0x00..0x1f + n, messaging
// key seed 0x20..0x3f + n.
func vectorParty(t testing.TB, n byte) party {
	t.Helper()
	seed := make([]byte, 64)
	for i := range seed {
		seed[i] = byte(i) + n
	}
	nk := ed25519.NewKeyFromSeed(seed[:32])
	k, err := NewKey(seed[32:])
	if err != nil {
		t.Fatal(err)
	}
	id, _ := core.NodeIDFromPublicKey(nk.Public().(ed25519.PublicKey))
	return party{node: nk, id: id, key: k}
}

// vectorTime is when the pinned envelope was sealed.
var vectorTime = time.UnixMilli(1_800_000_000_000)

// readVector returns the named hex value of a testdata file of
// "name hex" lines, or writes want under -update.
func readVector(t *testing.T, file, name string, want []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", file)
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i, l := range lines {
		k, v, _ := strings.Cut(l, " ")
		if k != name {
			continue
		}
		if *update {
			lines[i] = name + " " + hex.EncodeToString(want)
			os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
			return want
		}
		got, err := hex.DecodeString(v)
		if err != nil {
			t.Fatalf("%s %s: %v", file, name, err)
		}
		return got
	}
	if !*update {
		t.Fatalf("%s: no vector %q (run go test -run Vectors -update)", file, name)
	}
	lines = append(lines, name+" "+hex.EncodeToString(want))
	os.WriteFile(path, []byte(strings.TrimSpace(strings.Join(lines, "\n"))+"\n"), 0o644)
	return want
}

// TestVectors pins the key derivation, key record and envelope format:
// the envelope in testdata must keep opening to the same message.
func TestVectors(t *testing.T) {
	alice, bob := vectorParty(t, 0), vectorParty(t, 1)
	if got, want := bob.key.PublicKey().Bytes(), readVector(t, "vectors-v1.txt", "messaging-public-key", bob.key.PublicKey().Bytes()); !bytes.Equal(got, want) {
		t.Errorf("messaging key: got %x, want %x", got, want)
	}
	rec, _ := SignKeyRecord(bob.node, bob.key.PublicKey())
	recBytes, _ := rec.MarshalBinary()
	if got := readVector(t, "vectors-v1.txt", "key-record", recBytes); !bytes.Equal(got, recBytes) {
		t.Errorf("key record: got %x, want %x", recBytes, got)
	}
	mixSeed := make([]byte, KeySize)
	for i := range mixSeed {
		mixSeed[i] = byte(0x40 + i)
	}
	mk, err := MixEpochKey(mixSeed, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := readVector(t, "vectors-v1.txt", "mix-epoch-7-public-key", mk.PublicKey().Bytes()); !bytes.Equal(got, mk.PublicKey().Bytes()) {
		t.Errorf("mix epoch key: got %x, want %x", mk.PublicKey().Bytes(), got)
	}
	mixRec, _ := signMixKeyRecord(bob.node, 7, mk.PublicKey()).MarshalBinary()
	if got := readVector(t, "vectors-v1.txt", "mix-key-record", mixRec); !bytes.Equal(got, mixRec) {
		t.Errorf("mix key record: got %x, want %x", mixRec, got)
	}
	m := Message{To: bob.id, Time: vectorTime, ID: MessageID{1, 2, 3}, ContentType: TextType, Body: []byte("hello, bob")}
	fresh, _, err := Seal(alice.node, bob.key.PublicKey(), m)
	if err != nil {
		t.Fatal(err)
	}
	env := readVector(t, "vectors-v1.txt", "envelope", fresh)
	got, err := bob.opener().Open(env, vectorTime)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != alice.id || got.To != bob.id || !got.Time.Equal(vectorTime) || got.ID != m.ID ||
		got.ContentType != TextType || string(got.Body) != "hello, bob" || len(env) != headerSize+1024+aeadOverhead {
		t.Fatalf("pinned envelope opened to %+v", got)
	}
}
