// Package sphinx implements the alknet mixnet packet format: Sphinx
// (Danezis and Goldberg, 2009) over X25519 with blinded group elements, a
// fixed-size header for up to [MaxHops] hops with a per-hop HMAC, and a
// LIONESS wide-block payload built from ChaCha20 and BLAKE2b, so a payload
// changed on the way decrypts to noise at the exit and is detected.
//
// A sender builds a packet with [NewPacket]; each mix calls [Unwrap] with
// its key, which either yields the packet for the next hop or the payload
// for the final destination. [NewSURB] makes a single-use reply block.
// The construction is specified in docs/protocols/msg.md.
package sphinx

import (
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/chacha20"
)

// Packet geometry.
const (
	// Version is the packet format version.
	Version = 1
	// MaxHops is the longest route a header holds.
	MaxHops = 5
	// IDSize is the length of a node id (an Ed25519 public key).
	IDSize = 32
	// SURBIDSize is the length of a reply block's id.
	SURBIDSize = 16
	// macSize is the truncated HMAC-SHA256 of a header.
	macSize = 16
	// routingSize is one hop's routing block: command, node id, the next
	// hop's MAC, SURB id.
	routingSize = 1 + IDSize + macSize + SURBIDSize
	// betaSize is the routing information of a header.
	betaSize = MaxHops * routingSize
	// HeaderSize is version, group element, routing information, MAC.
	HeaderSize = 1 + 32 + betaSize + macSize
	// PayloadSize is the wide-block payload.
	PayloadSize = 2048
	// PacketSize is every packet's length.
	PacketSize = HeaderSize + PayloadSize
	// markerSize is the zero prefix of a plaintext payload that shows it
	// was not changed on the way.
	markerSize = 16
	// PlaintextSize is the message a payload carries.
	PlaintextSize = PayloadSize - markerSize
	// lionessKeySize is four 32-byte keys.
	lionessKeySize = 4 * 32
)

// Command says what a hop does with a packet.
type Command byte

// Commands in a routing block.
const (
	// Relay forwards the packet to the next hop.
	Relay Command = 1
	// Deliver hands the checked plaintext to the destination.
	Deliver Command = 2
	// Reply hands a SURB reply's still-wrapped payload to the SURB's maker.
	Reply Command = 3
)

// Errors of Unwrap, matched with errors.Is.
var (
	// ErrMalformed: wrong size, version or group element.
	ErrMalformed = errors.New("sphinx: malformed packet")
	// ErrMAC: the header MAC does not verify (changed, or not for this key).
	ErrMAC = errors.New("sphinx: header MAC mismatch")
	// ErrTagged: the payload was changed on the way.
	ErrTagged = errors.New("sphinx: payload tampered")
)

// Hop is one mix of a route.
type Hop struct {
	// ID is the mix's node id.
	ID [IDSize]byte
	// Key is the mix's X25519 key.
	Key *ecdh.PublicKey
}

// hopKeys are the keys one hop derives from its shared secret.
type hopKeys struct {
	mac      [32]byte
	stream   [32]byte
	lioness  [lionessKeySize]byte
	blinding [32]byte
	tag      [32]byte
}

// deriveKeys expands the shared secret with the hop's group element as
// salt: HKDF-SHA256(secret, salt=alpha, info="alknet sphinx v1", 256).
func deriveKeys(secret, alpha []byte) (*hopKeys, error) {
	b, err := hkdf.Key(sha256.New, secret, alpha, "alknet sphinx v1", 32+32+lionessKeySize+32+32)
	if err != nil {
		return nil, err
	}
	var k hopKeys
	n := copy(k.mac[:], b)
	n += copy(k.stream[:], b[n:])
	n += copy(k.lioness[:], b[n:])
	n += copy(k.blinding[:], b[n:])
	copy(k.tag[:], b[n:])
	clear(b)
	return &k, nil
}

// headerMAC is HMAC-SHA256 over beta, truncated to 16 bytes.
func headerMAC(key *[32]byte, beta []byte) []byte {
	m := hmac.New(sha256.New, key[:])
	m.Write(beta)
	return m.Sum(nil)[:macSize]
}

// keystream returns n bytes of ChaCha20 with key and a zero nonce.
func keystream(key []byte, n int) []byte {
	c, _ := chacha20.NewUnauthenticatedCipher(key, make([]byte, chacha20.NonceSize))
	out := make([]byte, n)
	c.XORKeyStream(out, out)
	return out
}

func xorInto(dst, src []byte) { subtle.XORBytes(dst, dst, src) }

// header is a built header and the per-hop keys its maker keeps.
type header struct {
	bytes []byte
	keys  []*hopKeys
}

// newHeader builds a header for route ending with command final (Deliver
// or Reply) to dest with surbID.
func newHeader(route []Hop, final Command, dest [IDSize]byte, surbID [SURBIDSize]byte) (*header, error) {
	n := len(route)
	if n == 0 || n > MaxHops {
		return nil, fmt.Errorf("sphinx: route of %d hops, want 1 to %d", n, MaxHops)
	}
	for i, h := range route {
		if h.Key == nil || h.Key.Curve() != ecdh.X25519() {
			return nil, fmt.Errorf("sphinx: hop %d: want an X25519 key", i)
		}
	}
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	alpha := x.PublicKey().Bytes()
	alpha0 := alpha
	keys := make([]*hopKeys, n)
	var blindings [][]byte
	for i, h := range route {
		s, err := x.ECDH(h.Key)
		if err != nil {
			return nil, fmt.Errorf("sphinx: hop %d: %w", i, err)
		}
		for _, b := range blindings {
			if s, err = x25519(b, s); err != nil {
				return nil, fmt.Errorf("sphinx: hop %d: %w", i, err)
			}
		}
		if keys[i], err = deriveKeys(s, alpha); err != nil {
			return nil, err
		}
		blindings = append(blindings, keys[i].blinding[:])
		if alpha, err = x25519(keys[i].blinding[:], alpha); err != nil {
			return nil, fmt.Errorf("sphinx: hop %d: %w", i, err)
		}
	}
	streams := make([][]byte, n)
	for i, k := range keys {
		streams[i] = keystream(k.stream[:], betaSize+routingSize)
	}
	var filler []byte
	for i := range n - 1 {
		filler = append(filler, make([]byte, routingSize)...)
		xorInto(filler, streams[i][betaSize+routingSize-len(filler):])
	}
	// The last hop's routing information: its block, random padding, filler.
	beta := make([]byte, betaSize-len(filler))
	beta[0] = byte(final)
	copy(beta[1:], dest[:])
	copy(beta[1+IDSize+macSize:], surbID[:])
	rand.Read(beta[routingSize:])
	xorInto(beta, streams[n-1][:len(beta)])
	beta = append(beta, filler...)
	gamma := headerMAC(&keys[n-1].mac, beta)
	for i := n - 2; i >= 0; i-- {
		next := make([]byte, betaSize)
		next[0] = byte(Relay)
		copy(next[1:], route[i+1].ID[:])
		copy(next[1+IDSize:], gamma)
		copy(next[routingSize:], beta[:betaSize-routingSize])
		xorInto(next, streams[i][:betaSize])
		beta = next
		gamma = headerMAC(&keys[i].mac, beta)
	}
	b := make([]byte, 0, HeaderSize)
	b = append(b, Version)
	b = append(b, alpha0...)
	b = append(b, beta...)
	b = append(b, gamma...)
	return &header{bytes: b, keys: keys}, nil
}

// NewPacket returns a packet that travels route (1 to MaxHops mixes, the
// first one the packet is sent to) and delivers plaintext (at most
// PlaintextSize bytes, zero-padded to it) to dest.
func NewPacket(route []Hop, dest [IDSize]byte, plaintext []byte) ([]byte, error) {
	if len(plaintext) > PlaintextSize {
		return nil, fmt.Errorf("sphinx: plaintext of %d bytes, limit %d", len(plaintext), PlaintextSize)
	}
	h, err := newHeader(route, Deliver, dest, [SURBIDSize]byte{})
	if err != nil {
		return nil, err
	}
	payload := make([]byte, PayloadSize)
	copy(payload[markerSize:], plaintext)
	for i := len(h.keys) - 1; i >= 0; i-- {
		lionessEncrypt(&h.keys[i].lioness, payload)
	}
	return append(h.bytes, payload...), nil
}

// Result is what a hop learns from a packet.
type Result struct {
	// Tag identifies the packet for replay detection: the same packet
	// gives the same tag at this key, and no other packet does.
	Tag [32]byte
	// Command is what to do next.
	Command Command
	// Next is the next hop (Relay) or the destination (Deliver, Reply).
	Next [IDSize]byte
	// SURBID names the reply block (Reply).
	SURBID [SURBIDSize]byte
	// Packet is the packet for the next hop (Relay).
	Packet []byte
	// Payload is the checked plaintext (Deliver, PlaintextSize bytes) or
	// the wrapped payload for the SURB's maker (Reply, PayloadSize bytes).
	Payload []byte
}

// Unwrap removes one layer of packet with the mix key. It fails with
// ErrMalformed, ErrMAC, or (at a Deliver hop) ErrTagged; it never panics
// on any input. The caller checks Result.Tag against its replay cache
// before acting on the result.
func Unwrap(key *ecdh.PrivateKey, packet []byte) (*Result, error) {
	if len(packet) != PacketSize || packet[0] != Version {
		return nil, ErrMalformed
	}
	alpha := packet[1:33]
	beta := packet[33 : 33+betaSize]
	gamma := packet[33+betaSize : HeaderSize]
	pub, err := ecdh.X25519().NewPublicKey(alpha)
	if err != nil {
		return nil, ErrMalformed
	}
	s, err := key.ECDH(pub)
	if err != nil {
		return nil, ErrMalformed
	}
	k, err := deriveKeys(s, alpha)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal(headerMAC(&k.mac, beta), gamma) {
		return nil, ErrMAC
	}
	r := &Result{Tag: k.tag}
	b := make([]byte, betaSize+routingSize)
	copy(b, beta)
	xorInto(b, keystream(k.stream[:], len(b)))
	r.Command = Command(b[0])
	copy(r.Next[:], b[1:])
	payload := append([]byte{}, packet[HeaderSize:]...)
	lionessDecrypt(&k.lioness, payload)
	switch r.Command {
	case Relay:
		next, err := x25519(k.blinding[:], alpha)
		if err != nil {
			return nil, ErrMalformed
		}
		p := make([]byte, 0, PacketSize)
		p = append(p, Version)
		p = append(p, next...)
		p = append(p, b[routingSize:]...)
		p = append(p, b[1+IDSize:1+IDSize+macSize]...)
		r.Packet = append(p, payload...)
	case Deliver:
		if subtle.ConstantTimeCompare(payload[:markerSize], make([]byte, markerSize)) != 1 {
			return nil, ErrTagged
		}
		r.Payload = payload[markerSize:]
	case Reply:
		copy(r.SURBID[:], b[1+IDSize+macSize:])
		r.Payload = payload
	default:
		return nil, ErrMalformed
	}
	return r, nil
}

// lionessEncrypt enciphers block in place with LIONESS (Anderson and
// Biham): L is the first 32 bytes, R the rest; S is ChaCha20 keyed by
// L⊕Ki with a zero nonce; H is BLAKE2b-256 keyed by Ki.
//
//	R ^= S(L^K1); L ^= H_K2(R); R ^= S(L^K3); L ^= H_K4(R)
func lionessEncrypt(key *[lionessKeySize]byte, block []byte) {
	l, r := block[:32], block[32:]
	lionessStream(l, key[0:32], r)
	lionessHash(l, key[32:64], r)
	lionessStream(l, key[64:96], r)
	lionessHash(l, key[96:128], r)
}

// lionessDecrypt inverts lionessEncrypt.
func lionessDecrypt(key *[lionessKeySize]byte, block []byte) {
	l, r := block[:32], block[32:]
	lionessHash(l, key[96:128], r)
	lionessStream(l, key[64:96], r)
	lionessHash(l, key[32:64], r)
	lionessStream(l, key[0:32], r)
}

// lionessStream XORs r with ChaCha20 keyed by l⊕k.
func lionessStream(l, k, r []byte) {
	var sk [32]byte
	subtle.XORBytes(sk[:], l, k)
	c, _ := chacha20.NewUnauthenticatedCipher(sk[:], make([]byte, chacha20.NonceSize))
	c.XORKeyStream(r, r)
}

// lionessHash XORs l with BLAKE2b-256 of r keyed by k.
func lionessHash(l, k, r []byte) {
	h, _ := blake2b.New256(k)
	h.Write(r)
	xorInto(l, h.Sum(nil))
}
