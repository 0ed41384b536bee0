package sphinx

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
)

// SURBSize is the encoded length of a SURB.
const SURBSize = IDSize + HeaderSize + lionessKeySize

// SURB is a single-use reply block: a header that routes a reply back to
// its maker, the first hop to send it to, and the key that wraps the
// reply's payload. Whoever holds it can reply once without learning the
// route or the destination; a second use is dropped by the mixes as a
// replay.
type SURB struct {
	// FirstHop is the mix the reply packet is sent to.
	FirstHop [IDSize]byte
	header   []byte
	key      [lionessKeySize]byte
}

// SURBKeys are what the SURB's maker keeps to read the reply.
type SURBKeys struct {
	// ID names the SURB; the exit hop hands it with the reply.
	ID      [SURBIDSize]byte
	key     [lionessKeySize]byte
	hopKeys [][lionessKeySize]byte
}

// NewSURB returns a reply block over route that delivers to dest (the
// maker's node or home node) tagged with a fresh SURB id, and the keys
// to open the reply.
func NewSURB(route []Hop, dest [IDSize]byte) (*SURB, *SURBKeys, error) {
	var keys SURBKeys
	rand.Read(keys.ID[:])
	h, err := newHeader(route, Reply, dest, keys.ID)
	if err != nil {
		return nil, nil, err
	}
	s := &SURB{FirstHop: route[0].ID, header: h.bytes}
	rand.Read(s.key[:])
	keys.key = s.key
	for _, k := range h.keys {
		keys.hopKeys = append(keys.hopKeys, k.lioness)
	}
	return s, &keys, nil
}

// Packet returns the reply packet carrying plaintext (at most
// PlaintextSize bytes), to be sent to s.FirstHop.
func (s *SURB) Packet(plaintext []byte) ([]byte, error) {
	if len(plaintext) > PlaintextSize {
		return nil, fmt.Errorf("sphinx: plaintext of %d bytes, limit %d", len(plaintext), PlaintextSize)
	}
	payload := make([]byte, PayloadSize)
	copy(payload[markerSize:], plaintext)
	lionessEncrypt(&s.key, payload)
	return append(append([]byte{}, s.header...), payload...), nil
}

// MarshalBinary encodes the SURB: first hop, header, payload key.
func (s *SURB) MarshalBinary() ([]byte, error) {
	b := append([]byte{}, s.FirstHop[:]...)
	b = append(b, s.header...)
	return append(b, s.key[:]...), nil
}

// ParseSURB decodes a SURB from MarshalBinary's form.
func ParseSURB(b []byte) (*SURB, error) {
	if len(b) != SURBSize || b[IDSize] != Version {
		return nil, errors.New("sphinx: malformed SURB")
	}
	s := &SURB{header: append([]byte{}, b[IDSize:IDSize+HeaderSize]...)}
	copy(s.FirstHop[:], b)
	copy(s.key[:], b[IDSize+HeaderSize:])
	return s, nil
}

// Open unwraps a reply payload (Result.Payload of the Reply hop) and
// returns the plaintext, or ErrTagged if it was changed on the way.
func (k *SURBKeys) Open(payload []byte) ([]byte, error) {
	if len(payload) != PayloadSize {
		return nil, ErrMalformed
	}
	p := append([]byte{}, payload...)
	for i := len(k.hopKeys) - 1; i >= 0; i-- {
		lionessEncrypt(&k.hopKeys[i], p)
	}
	lionessDecrypt(&k.key, p)
	if subtle.ConstantTimeCompare(p[:markerSize], make([]byte, markerSize)) != 1 {
		return nil, ErrTagged
	}
	return p[markerSize:], nil
}
