package sphinx

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
)

type testMix struct {
	hop Hop
	key *ecdh.PrivateKey
}

func newMixes(t testing.TB, n int) []testMix {
	t.Helper()
	ms := make([]testMix, n)
	for i := range ms {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ms[i].key = k
		ms[i].hop.Key = k.PublicKey()
		rand.Read(ms[i].hop.ID[:])
	}
	return ms
}

func route(ms []testMix) []Hop {
	var r []Hop
	for _, m := range ms {
		r = append(r, m.hop)
	}
	return r
}

// walk unwraps p through ms and returns the last result.
func walk(t *testing.T, ms []testMix, p []byte) (*Result, error) {
	t.Helper()
	for i, m := range ms {
		if len(p) != PacketSize {
			t.Fatalf("hop %d: packet of %d bytes", i, len(p))
		}
		r, err := Unwrap(m.key, p)
		if err != nil {
			return nil, err
		}
		if i < len(ms)-1 {
			if r.Command != Relay || r.Next != ms[i+1].hop.ID || r.Payload != nil {
				t.Fatalf("hop %d: got command %d next %x, want relay to hop %d", i, r.Command, r.Next[:4], i+1)
			}
			p = r.Packet
			continue
		}
		return r, nil
	}
	return nil, errors.New("empty route")
}

func TestRoundTrip(t *testing.T) {
	var dest [IDSize]byte
	rand.Read(dest[:])
	for n := 1; n <= MaxHops; n++ {
		t.Run(fmt.Sprintf("%d hops", n), func(t *testing.T) {
			ms := newMixes(t, n)
			msg := []byte("hello through the mixes")
			p, err := NewPacket(route(ms), dest, msg)
			if err != nil {
				t.Fatal(err)
			}
			r, err := walk(t, ms, p)
			if err != nil {
				t.Fatal(err)
			}
			if r.Command != Deliver || r.Next != dest {
				t.Fatalf("final: command %d dest %x", r.Command, r.Next[:4])
			}
			if !bytes.Equal(r.Payload[:len(msg)], msg) || len(r.Payload) != PlaintextSize {
				t.Fatalf("payload %q", r.Payload[:len(msg)])
			}
		})
	}
}

// TestHopSeesOnlyItsLayer: a mix cannot unwrap another mix's layer, the
// packet bytes change at every hop, and only the exit sees the plaintext.
func TestHopSeesOnlyItsLayer(t *testing.T) {
	ms := newMixes(t, 3)
	var dest [IDSize]byte
	rand.Read(dest[:])
	secret := []byte("only the exit reads this")
	p, _ := NewPacket(route(ms), dest, secret)
	for i := range ms {
		for j, other := range ms {
			if j == i {
				continue
			}
			if _, err := Unwrap(other.key, p); !errors.Is(err, ErrMAC) {
				t.Fatalf("hop %d's packet unwrapped by mix %d: %v", i, j, err)
			}
		}
		if bytes.Contains(p, secret) {
			t.Fatalf("hop %d's packet shows the plaintext", i)
		}
		r, err := Unwrap(ms[i].key, p)
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			if bytes.Contains(r.Packet, secret) || bytes.Equal(r.Packet[1:33], p[1:33]) {
				t.Fatalf("hop %d: next packet shows plaintext or reuses the group element", i)
			}
			if r.Next == dest {
				t.Fatalf("hop %d learned the destination", i)
			}
			p = r.Packet
		}
	}
}

func TestTamper(t *testing.T) {
	ms := newMixes(t, 3)
	var dest [IDSize]byte
	p, _ := NewPacket(route(ms), dest, []byte("x"))
	cases := []struct {
		name string
		off  int
		want error
	}{
		{"version", 0, ErrMalformed},
		{"alpha", 5, ErrMAC},
		{"beta", 100, ErrMAC},
		{"gamma", HeaderSize - 1, ErrMAC},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := bytes.Clone(p)
			q[c.off] ^= 1
			if _, err := Unwrap(ms[0].key, q); !errors.Is(err, c.want) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	t.Run("payload tagged at the first hop", func(t *testing.T) {
		q := bytes.Clone(p)
		q[HeaderSize+500] ^= 0x80
		if _, err := walk(t, ms, q); !errors.Is(err, ErrTagged) {
			t.Fatalf("got %v, want ErrTagged", err)
		}
	})
	if _, err := Unwrap(ms[0].key, p[:100]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short packet: %v", err)
	}
}

func TestReplayTagStable(t *testing.T) {
	ms := newMixes(t, 2)
	var dest [IDSize]byte
	p, _ := NewPacket(route(ms), dest, nil)
	a, _ := Unwrap(ms[0].key, p)
	b, _ := Unwrap(ms[0].key, p)
	q, _ := NewPacket(route(ms), dest, nil)
	c, _ := Unwrap(ms[0].key, q)
	if a.Tag != b.Tag || a.Tag == c.Tag {
		t.Fatal("tags: same packet must repeat its tag, another must not")
	}
}

func TestSURB(t *testing.T) {
	ms := newMixes(t, 3)
	var alice [IDSize]byte
	rand.Read(alice[:])
	surb, keys, err := NewSURB(route(ms), alice)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := surb.MarshalBinary()
	surb, err = ParseSURB(enc)
	if err != nil || surb.FirstHop != ms[0].hop.ID {
		t.Fatalf("parse: %v", err)
	}
	p, err := surb.Packet([]byte("the reply"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := walk(t, ms, p)
	if err != nil {
		t.Fatal(err)
	}
	if r.Command != Reply || r.Next != alice || r.SURBID != keys.ID {
		t.Fatalf("final: %d %x", r.Command, r.SURBID)
	}
	if bytes.Contains(r.Payload, []byte("the reply")) {
		t.Fatal("the exit reads the reply")
	}
	pt, err := keys.Open(r.Payload)
	if err != nil || !bytes.HasPrefix(pt, []byte("the reply")) {
		t.Fatalf("open: %v %q", err, pt[:9])
	}
	r.Payload[7] ^= 1
	if _, err := keys.Open(r.Payload); !errors.Is(err, ErrTagged) {
		t.Fatalf("tagged reply: %v", err)
	}
}

func TestLIONESSInverse(t *testing.T) {
	var k [lionessKeySize]byte
	rand.Read(k[:])
	b := make([]byte, PayloadSize)
	rand.Read(b)
	orig := bytes.Clone(b)
	lionessEncrypt(&k, b)
	if bytes.Equal(b, orig) {
		t.Fatal("encrypt changed nothing")
	}
	lionessDecrypt(&k, b)
	if !bytes.Equal(b, orig) {
		t.Fatal("decrypt does not invert encrypt")
	}
}

func TestRouteLimits(t *testing.T) {
	var dest [IDSize]byte
	if _, err := NewPacket(nil, dest, nil); err == nil {
		t.Fatal("empty route accepted")
	}
	if _, err := NewPacket(route(newMixes(t, MaxHops+1)), dest, nil); err == nil {
		t.Fatal("6 hops accepted")
	}
	if _, err := NewPacket(route(newMixes(t, 1)), dest, make([]byte, PlaintextSize+1)); err == nil {
		t.Fatal("oversized plaintext accepted")
	}
}

// FuzzUnwrap: Unwrap never panics, and only a well-formed packet made for
// the key unwraps.
func FuzzUnwrap(f *testing.F) {
	ms := newMixes(f, 2)
	var dest [IDSize]byte
	p, _ := NewPacket(route(ms), dest, []byte("seed"))
	f.Add(p)                        // valid for the first hop
	f.Add(p[:HeaderSize])           // truncated to the header
	f.Add([]byte{})                 // empty
	f.Add(make([]byte, PacketSize)) // all zero: low-order group element
	q := bytes.Clone(p)
	q[40] ^= 1
	f.Add(q) // one bit of beta flipped
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Unwrap(ms[0].key, b)
		if err == nil && r.Command == Relay && len(r.Packet) != PacketSize {
			t.Fatal("relay packet of wrong size")
		}
	})
}

func BenchmarkNewPacket(b *testing.B) {
	ms := newMixes(b, 3)
	var dest [IDSize]byte
	msg := make([]byte, PlaintextSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewPacket(route(ms), dest, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnwrap(b *testing.B) {
	ms := newMixes(b, 3)
	var dest [IDSize]byte
	p, _ := NewPacket(route(ms), dest, nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Unwrap(ms[0].key, p); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseSURB: SURBs arrive inside messages; the decoder never panics,
// and a SURB it accepts makes well-sized packets.
func FuzzParseSURB(f *testing.F) {
	ms := newMixes(f, 2)
	var dest [IDSize]byte
	s, _, _ := NewSURB(route(ms), dest)
	b, _ := s.MarshalBinary()
	f.Add(b)                      // valid
	f.Add(b[:SURBSize-1])         // one byte short
	f.Add(make([]byte, SURBSize)) // zeros: wrong version
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ParseSURB(in)
		if err != nil {
			return
		}
		if p, err := s.Packet([]byte("x")); err != nil || len(p) != PacketSize {
			t.Fatalf("packet: %v, %d bytes", err, len(p))
		}
	})
}
