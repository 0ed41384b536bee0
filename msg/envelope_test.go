package msg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// party is a node with its node key and messaging key.
type party struct {
	node ed25519.PrivateKey
	id   core.NodeID
	key  *ecdh.PrivateKey
}

func newParty(t testing.TB) party {
	t.Helper()
	_, nk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, KeySize)
	rand.Read(seed)
	k, err := NewKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := core.NodeIDFromPublicKey(nk.Public().(ed25519.PublicKey))
	return party{node: nk, id: id, key: k}
}

func (p party) opener() *Opener { return &Opener{Key: p.key, NodeID: p.id} }

func TestSealOpen(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	for _, size := range []int{0, 1, 800, 5000, 70000, DefaultMaxBodyBytes} {
		body := make([]byte, size)
		rand.Read(body)
		env, sent, err := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, ContentType: "application/x-test", Body: body})
		if err != nil {
			t.Fatal(err)
		}
		inner := len(env) - headerSize - aeadOverhead
		if PaddedSize(inner) != inner {
			t.Fatalf("body %d: inner size %d is not a bucket", size, inner)
		}
		m, err := bob.opener().Open(env, time.Now())
		if err != nil {
			t.Fatalf("body %d: %v", size, err)
		}
		if m.From != alice.id || m.To != bob.id || m.ID != sent.ID || !m.Time.Equal(sent.Time) ||
			m.ContentType != "application/x-test" || !bytes.Equal(m.Body, body) {
			t.Fatalf("body %d: got %+v", size, m)
		}
	}
}

func TestBuckets(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	want := map[int]int{0: 1024, 100: 1024, 2000: 4096, 10000: 16384, 40000: 65536, 100000: 131072}
	for body, bucket := range want {
		env, _, err := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: make([]byte, body)})
		if err != nil {
			t.Fatal(err)
		}
		if got := len(env) - headerSize - aeadOverhead; got != bucket {
			t.Errorf("body %d: padded to %d, want %d", body, got, bucket)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	alice, bob, carol := newParty(t), newParty(t), newParty(t)
	now := time.Now()
	env, _, err := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(env); b[i] ^= 1; return b }
	// An envelope whose signature is corrupted before sealing.
	badSig := func() []byte {
		m := Message{From: alice.id, To: bob.id, Time: now, ContentType: "x", Body: []byte("hi")}
		inner, _ := encodeInner(m)
		sig := ed25519.Sign(alice.node, signed(inner))
		sig[3] ^= 1
		e, _ := sealInner(bob.key.PublicKey(), bob.id, pad(append(inner, sig...)))
		return e
	}()
	// An envelope whose inner recipient differs from the header's.
	mismatch := func() []byte {
		m := Message{From: alice.id, To: carol.id, Time: now, Body: []byte("hi")}
		inner, _ := encodeInner(m)
		e, _ := sealInner(bob.key.PublicKey(), bob.id, pad(append(inner, ed25519.Sign(alice.node, signed(inner))...)))
		return e
	}()
	sealedAt := func(at time.Time) []byte {
		e, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Time: at})
		return e
	}
	cases := []struct {
		name string
		env  []byte
		o    *Opener
		want error
	}{
		{"ciphertext bit", flip(len(env) - 40), bob.opener(), ErrDecrypt},
		{"tag bit", flip(len(env) - 1), bob.opener(), ErrDecrypt},
		{"enc bit", flip(40), bob.opener(), ErrDecrypt},
		{"recipient bit", flip(5), bob.opener(), ErrWrongRecipient},
		{"version", flip(0), bob.opener(), ErrVersion},
		{"signature", badSig, bob.opener(), ErrBadSignature},
		{"inner recipient", mismatch, bob.opener(), ErrWrongRecipient},
		{"wrong recipient", env, carol.opener(), ErrWrongRecipient},
		{"wrong key", env, &Opener{Key: carol.key, NodeID: bob.id}, ErrDecrypt},
		{"too old", sealedAt(now.Add(-10 * time.Minute)), bob.opener(), ErrSkew},
		{"from the future", sealedAt(now.Add(10 * time.Minute)), bob.opener(), ErrSkew},
		{"truncated", env[:100], bob.opener(), ErrMalformed},
		{"empty", nil, bob.opener(), ErrMalformed},
		{"body limit", env, &Opener{Key: bob.key, NodeID: bob.id, MaxBodyBytes: 1}, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.o.Open(c.env, now)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestReceiverDropsReplay(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	now := time.Now()
	r := &Receiver{Opener: *bob.opener(), Clock: func() time.Time { return now }}
	env, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: []byte("once")})
	if _, err := r.Receive(env); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Receive(env); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("replay: got %v, want ErrDuplicate", err)
	}
	// Once the id is forgotten, the skew check refuses the replay instead.
	now = now.Add(DefaultSkew + time.Second)
	if _, err := r.Receive(env); !errors.Is(err, ErrSkew) {
		t.Fatalf("late replay: got %v, want ErrSkew", err)
	}
}

func TestKeyRecord(t *testing.T) {
	p := newParty(t)
	r, err := SignKeyRecord(p.node, p.key.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseKeyRecordText(r.String())
	if err != nil || got.Node != p.id || !got.Key.Equal(p.key.PublicKey()) {
		t.Fatalf("round trip: %v", err)
	}
	b, _ := r.MarshalBinary()
	b[40] ^= 1
	if _, err := ParseKeyRecord(b); err == nil {
		t.Fatal("a changed key verified")
	}
}

func TestNewKeyClamps(t *testing.T) {
	seed := bytes.Repeat([]byte{0xff}, KeySize)
	a, err := NewKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	if seed[0] != 0xff {
		t.Fatal("NewKey changed the caller's seed")
	}
	b, _ := a.Bytes(), 0
	if b[0]&7 != 0 || b[31]&0x80 != 0 || b[31]&0x40 == 0 {
		t.Fatalf("key not clamped: %x", b)
	}
	if _, err := NewKey(seed[:31]); err == nil {
		t.Fatal("short seed accepted")
	}
}

// FuzzOpen: the envelope decoder never panics on any input, and nothing
// but a genuine envelope opens.
func FuzzOpen(f *testing.F) {
	alice, bob := newParty(f), newParty(f)
	now := time.Now()
	env, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Time: now, Body: []byte("seed")})
	f.Add(env)                                   // valid
	f.Add(env[:headerSize])                      // header only
	f.Add([]byte{})                              // empty
	f.Add([]byte{2})                             // unknown version
	f.Add(append([]byte{}, env[:len(env)-1]...)) // truncated tag
	o := bob.opener()
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := o.Open(b, now)
		if err == nil && (m.From != alice.id || !bytes.Equal(b, env)) {
			t.Fatal("a forged envelope opened")
		}
		// The inner decoder alone, on raw bytes.
		_, _ = decodeInner(b, 1<<16)
	})
}

func BenchmarkSeal(b *testing.B) {
	alice, bob := newParty(b), newParty(b)
	body := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: body}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	alice, bob := newParty(b), newParty(b)
	env, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: make([]byte, 512)})
	o := bob.opener()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Open(env, now); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseKeyRecord: key records come from other nodes; the decoder never
// panics and accepts only records whose signature verifies.
func FuzzParseKeyRecord(f *testing.F) {
	p := newParty(f)
	r, _ := SignKeyRecord(p.node, p.key.PublicKey())
	b, _ := r.MarshalBinary()
	f.Add(b)                                       // valid
	f.Add(b[:64])                                  // truncated
	f.Add(make([]byte, 128))                       // zeros: bad point and signature
	f.Add([]byte(r.String()[len("alkmsgkey1:"):])) // text body where binary goes
	f.Fuzz(func(t *testing.T, in []byte) {
		if got, err := ParseKeyRecord(in); err == nil && got.Verify() != nil {
			t.Fatal("accepted a record that does not verify")
		}
		_, _ = ParseKeyRecordText("alkmsgkey1:" + string(in))
	})
}
