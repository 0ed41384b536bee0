package msg

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

func testDirectory(t testing.TB) (*MixDirectory, party) {
	t.Helper()
	d := &MixDirectory{Issued: time.UnixMilli(1_800_000_000_000), Expires: time.UnixMilli(1_800_003_600_000)}
	for i := range 3 {
		p := newParty(t)
		d.Mixes = append(d.Mixes, MixDescriptor{Node: p.id, Addr: "127.0.0.1:4433", Key: p.key.PublicKey(), Layer: i, Epoch: 7})
	}
	return d, newParty(t)
}

func TestDirectory(t *testing.T) {
	d, signer := testDirectory(t)
	b, err := d.Sign(signer.node)
	if err != nil {
		t.Fatal(err)
	}
	at := d.Issued.Add(time.Minute)
	got, err := ParseDirectory(b, []core.NodeID{signer.id}, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Mixes) != 3 || got.Signer != signer.id || !got.Mixes[1].Key.Equal(d.Mixes[1].Key) || got.Mixes[2].Epoch != 7 {
		t.Fatalf("round trip: %+v", got)
	}
	route, err := got.Route()
	if err != nil || len(route) != 3 || route[0].Layer != 0 || route[2].Layer != 2 {
		t.Fatalf("route: %v", err)
	}
	flipped := bytes.Clone(b)
	flipped[len(flipped)-5] ^= 1
	cases := []struct {
		name    string
		b       []byte
		trusted []core.NodeID
		at      time.Time
		want    string
	}{
		{"untrusted signer", b, []core.NodeID{newParty(t).id}, at, "not trusted"},
		{"changed body", flipped, []core.NodeID{signer.id}, at, "bad signature"},
		{"expired", b, []core.NodeID{signer.id}, d.Expires, "not valid now"},
		{"not yet valid", b, []core.NodeID{signer.id}, d.Issued.Add(-time.Second), "not valid now"},
		{"truncated", b[:50], []core.NodeID{signer.id}, at, "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseDirectory(c.b, c.trusted, c.at); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	d.Mixes = d.Mixes[:2]
	if _, err := d.Sign(signer.node); err == nil {
		t.Fatal("a directory with an empty layer was signed")
	}
}

// FuzzParseDirectory: the directory decoder never panics, and a body it
// accepts is one the trusted signer signed.
func FuzzParseDirectory(f *testing.F) {
	d, signer := testDirectory(f)
	b, _ := d.Sign(signer.node)
	at := d.Issued.Add(time.Minute)
	f.Add(b)                           // valid
	f.Add(b[:len(directoryMagic)+96])  // header without body
	f.Add([]byte(directoryMagic))      // magic only
	f.Add([]byte{})                    // empty
	f.Add(append(bytes.Clone(b), ' ')) // trailing byte: breaks the signature
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ParseDirectory(in, []core.NodeID{signer.id}, at)
		if err == nil && (got.Signer != signer.id || len(got.Mixes) == 0) {
			t.Fatal("accepted a directory without a trusted signature")
		}
	})
}

func TestFragments(t *testing.T) {
	env := bytes.Repeat([]byte{1, 2, 3}, 3000)
	frags, err := fragment(env)
	if err != nil || len(frags) != 5 {
		t.Fatalf("%v, %d fragments", err, len(frags))
	}
	r := newReassembler(time.Now)
	var to core.NodeID
	for i, f := range []int{4, 0, 2, 2, 1, 3} { // out of order, one repeated
		got, err := r.add(to, frags[f])
		if err != nil {
			t.Fatal(err)
		}
		if (got != nil) != (i == 5) {
			t.Fatalf("step %d: complete=%v", i, got != nil)
		}
		if got != nil && !bytes.Equal(got, env) {
			t.Fatal("reassembled bytes differ")
		}
	}
	bad := bytes.Clone(frags[0])
	bad[IDSize] = 9 // index beyond the count
	if _, err := r.add(to, bad); err == nil {
		t.Fatal("bad fragment accepted")
	}
	if _, err := fragment(make([]byte, MaxMixnetEnvelopeBytes+1)); err == nil {
		t.Fatal("oversized envelope fragmented")
	}
}

// FuzzDecodeEntries: the inbox answer decoder never panics.
func FuzzDecodeEntries(f *testing.F) {
	f.Add(appendEntry([]byte{0, 0, 0, 1}, Entry{ID: 1, Received: time.UnixMilli(5), Kind: KindEnvelope, Data: []byte("x")})) // one entry
	f.Add([]byte{0, 0, 0, 2})                                                                                                // count without entries
	f.Add([]byte{})                                                                                                          // empty
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = decodeEntries(b) })
}

// FuzzReassemble: fragments arrive from exit mixes; the reassembler never
// panics and returns only envelopes its fragments describe.
func FuzzReassemble(f *testing.F) {
	frags, _ := fragment(bytes.Repeat([]byte{7}, 3000))
	f.Add(frags[0], frags[1]) // the two fragments of one envelope
	f.Add(frags[1], frags[1]) // the second twice
	f.Add([]byte{}, frags[0]) // empty, then a fragment
	bad := bytes.Clone(frags[0])
	bad[IDSize+1] = 0
	f.Add(bad, frags[1]) // zero count
	f.Fuzz(func(t *testing.T, a, b []byte) {
		r := newReassembler(time.Now)
		var to core.NodeID
		for _, in := range [][]byte{a, b} {
			env, err := r.add(to, in)
			if err == nil && env != nil && len(env) > 2*FragmentBytes {
				t.Fatalf("two fragments made %d bytes", len(env))
			}
		}
	})
}
