package msg

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg/sphinx"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// TestEpochRotation: a mix accepts the current epoch's key, and the
// previous one's during the grace period only; replay tags are kept per
// epoch.
func TestEpochRotation(t *testing.T) {
	const length, grace = time.Hour, 10 * time.Minute
	p := newParty(t)
	seed := p.key.Bytes()
	clock := &fakeClock{}
	mix, err := NewMix(MixConfig{
		Seed: seed, EpochLength: length, EpochGrace: grace, Clock: clock.now,
		Dialer: &core.Dialer{Key: p.node}, Resolve: func(core.NodeID) (string, error) { return "", errors.New("none") },
	})
	if err != nil {
		t.Fatal(err)
	}
	const e = 500_000
	start := EpochStart(e, length)
	if EpochAt(start, length) != e || EpochAt(start.Add(-time.Millisecond), length) != e-1 {
		t.Fatal("epoch arithmetic")
	}
	packet := func(epoch uint64) []byte {
		t.Helper()
		k, err := MixEpochKey(seed, epoch)
		if err != nil {
			t.Fatal(err)
		}
		var hop sphinx.Hop
		copy(hop.ID[:], p.id.PublicKey())
		hop.Key = k.PublicKey()
		b, err := sphinx.NewPacket([]sphinx.Hop{hop}, [sphinx.IDSize]byte(p.id.PublicKey()), make([]byte, sphinx.PlaintextSize))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	accept := func(what string, b []byte, want error) {
		t.Helper()
		if err := mix.Accept(b); !errors.Is(err, want) {
			t.Fatalf("%s: got %v, want %v", what, err, want)
		}
	}

	clock.set(start.Add(30 * time.Minute))
	old := packet(e)
	accept("current epoch", old, nil)
	accept("replay", old, ErrReplay)
	accept("next epoch's key before it starts", packet(e+1), sphinx.ErrMAC)
	accept("previous epoch's key outside any grace", packet(e-1), sphinx.ErrMAC)

	clock.set(start.Add(length + grace - time.Second)) // epoch e+1, within the grace
	accept("previous epoch within the grace", packet(e), nil)
	accept("replay of the previous epoch within the grace", old, ErrReplay)
	cur := packet(e + 1)
	accept("new epoch", cur, nil)
	accept("replay in the new epoch", cur, ErrReplay)

	clock.set(start.Add(length + grace)) // the grace is over
	accept("previous epoch after the grace", packet(e), sphinx.ErrMAC)
	accept("replay of the previous epoch after the grace", old, sphinx.ErrMAC)
	accept("replay in the current epoch", cur, ErrReplay)
	if st := mix.Stats(); st.Accepted != 3 || st.Replays != 4 {
		t.Fatalf("stats %+v", st)
	}

	// Key records: the current and the next epoch, signed, matching the
	// derivation; no others.
	for _, ep := range []uint64{e + 1, e + 2} {
		rec, err := mix.KeyRecord(ep)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := rec.MarshalBinary()
		got, err := ParseMixKeyRecord(b)
		k, _ := MixEpochKey(seed, ep)
		if err != nil || got.Node != p.id || got.Epoch != ep || !got.Key.Equal(k.PublicKey()) {
			t.Fatalf("epoch %d: record %+v, %v", ep, got, err)
		}
	}
	for _, ep := range []uint64{e, e + 3} {
		if _, err := mix.KeyRecord(ep); err == nil {
			t.Fatalf("a key record for epoch %d", ep)
		}
	}
}

func TestMixEpochKey(t *testing.T) {
	seed := bytes.Repeat([]byte{9}, KeySize)
	a, _ := MixEpochKey(seed, 1)
	b, _ := MixEpochKey(seed, 1)
	c, _ := MixEpochKey(seed, 2)
	if !a.Equal(b) || a.Equal(c) {
		t.Fatal("epoch keys are not deterministic and distinct per epoch")
	}
	if _, err := MixEpochKey(seed[:31], 1); err == nil {
		t.Fatal("a short seed was accepted")
	}
	for _, c := range []struct {
		length, grace time.Duration
		want          string
	}{
		{time.Minute, time.Minute, "grace"},
		{time.Minute, -time.Second, "grace"},
		{time.Millisecond, 0, "length"},
		{1500 * time.Millisecond, 0, ""},
	} {
		_, _, err := checkEpochs(c.length, c.grace)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("checkEpochs(%v, %v): %v, want %q", c.length, c.grace, err, c.want)
		}
	}
}

// FuzzParseMixKeyRecord: the mix key record decoder never panics and
// accepts only records whose signature verifies.
func FuzzParseMixKeyRecord(f *testing.F) {
	p := newParty(f)
	good, _ := signMixKeyRecord(p.node, 3, p.key.PublicKey()).MarshalBinary()
	f.Add(good)                           // valid
	f.Add(good[:len(good)-1])             // short
	f.Add(append(bytes.Clone(good), 0))   // long
	f.Add(make([]byte, mixKeyRecordSize)) // zeros
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseMixKeyRecord(b)
		if err != nil {
			return
		}
		if out, _ := r.MarshalBinary(); !bytes.Equal(out, b) {
			t.Fatal("accepted record does not round-trip")
		}
	})
}
