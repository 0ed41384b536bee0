package dns

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/core"
)

// Sizes of the signed-packet encoding (pkarr).
const (
	// MaxPacketBytes bounds the DNS packet inside a signed packet.
	MaxPacketBytes = 1000
	// sigLen and tsLen are the signature and timestamp fields.
	sigLen = ed25519.SignatureSize
	tsLen  = 8
	// MaxRelayPayloadBytes bounds a relay body: signature, timestamp, packet.
	MaxRelayPayloadBytes = sigLen + tsLen + MaxPacketBytes
	// MaxSignedPacketBytes bounds the full encoding: key and relay payload.
	MaxSignedPacketBytes = ed25519.PublicKeySize + MaxRelayPayloadBytes
)

// Errors of signed packets and their store. Each maps to one relay status
// (see docs/protocols/dns.md).
var (
	// ErrBadKey: the key is not a z-base-32 Ed25519 public key. (400)
	ErrBadKey = errors.New("bad public key")
	// ErrBadSignature: the signature does not verify. (400)
	ErrBadSignature = errors.New("bad signature")
	// ErrBadPacket: the encoding or the DNS packet inside does not parse. (400)
	ErrBadPacket = errors.New("bad packet")
	// ErrTooLarge: the DNS packet exceeds MaxPacketBytes. (413)
	ErrTooLarge = errors.New("packet too large")
	// ErrNotNewer: the store holds a packet with a newer or equal
	// timestamp. (409)
	ErrNotNewer = errors.New("timestamp not newer than the stored packet")
	// ErrCASFailed: the stored packet is not the one the publisher named. (412)
	ErrCASFailed = errors.New("stored packet does not match If-Match")
	// ErrCASRequired: the store requires a compare-and-swap condition. (428)
	ErrCASRequired = errors.New("If-Match required")
	// ErrRateLimited: too many publishes from this source. (429)
	ErrRateLimited = errors.New("rate limited")
	// ErrForbidden: the publisher's identity may not publish. (403)
	ErrForbidden = errors.New("publishing not allowed")
	// ErrStoreFull: the relay holds [Config.RelayMaxPackets] packets and
	// this one is for a key it does not hold yet. (507)
	ErrStoreFull = errors.New("relay store full")
)

// SignedPacket is a DNS packet signed by an Ed25519 key in the pkarr
// format: key(32) ‖ signature(64) ‖ timestamp(8, big-endian µs) ‖ packet.
// The signature covers the bencoded "3:seqi<timestamp>e1:v<len>:<packet>".
// Record names inside are relative to the key: "_alknet.<z32>." means
// "_alknet" under the key. A SignedPacket is immutable.
type SignedPacket struct {
	key     core.NodeID
	sig     [sigLen]byte
	ts      uint64
	packet  []byte
	records []mdns.RR // names normalised to end in "<z32>."
}

// signable is the bencoded string the signature covers.
func signable(ts uint64, packet []byte) []byte {
	b := make([]byte, 0, len(packet)+48)
	b = append(b, "3:seqi"...)
	b = strconv.AppendUint(b, ts, 10)
	b = append(b, "e1:v"...)
	b = strconv.AppendInt(b, int64(len(packet)), 10)
	b = append(b, ':')
	return append(b, packet...)
}

// Sign builds and signs a packet holding records for key at time at.
// Record names may be relative to the key ("_alknet.") or already end in
// its z-base-32 label ("_alknet.<z32>.").
func Sign(key ed25519.PrivateKey, at time.Time, records []mdns.RR) (*SignedPacket, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("dns: sign: %w", ErrBadKey)
	}
	id, err := core.NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("dns: sign: %w", ErrBadKey)
	}
	m := new(mdns.Msg)
	m.Response, m.Authoritative, m.Compress = true, true, true
	for _, rr := range records {
		rr = mdns.Copy(rr)
		rr.Header().Name = keyName(rr.Header().Name, id)
		m.Answer = append(m.Answer, rr)
	}
	packet, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("dns: sign: %w: %w", ErrBadPacket, err)
	}
	if len(packet) > MaxPacketBytes {
		return nil, fmt.Errorf("dns: sign: %w: %d bytes, limit %d", ErrTooLarge, len(packet), MaxPacketBytes)
	}
	ts := uint64(at.UnixMicro())
	p := &SignedPacket{key: id, ts: ts, packet: packet}
	copy(p.sig[:], ed25519.Sign(key, signable(ts, packet)))
	if p.records, err = parsePacket(packet, id); err != nil {
		return nil, fmt.Errorf("dns: sign: %w", err)
	}
	return p, nil
}

// DecodeSignedPacket decodes and verifies the full encoding (key first).
func DecodeSignedPacket(b []byte) (*SignedPacket, error) {
	if len(b) < ed25519.PublicKeySize {
		return nil, fmt.Errorf("dns: signed packet: %w: %d bytes", ErrBadPacket, len(b))
	}
	id, err := core.NodeIDFromPublicKey(ed25519.PublicKey(b[:ed25519.PublicKeySize]))
	if err != nil {
		return nil, fmt.Errorf("dns: signed packet: %w", ErrBadKey)
	}
	return DecodeRelayPayload(id, b[ed25519.PublicKeySize:])
}

// DecodeRelayPayload decodes and verifies signature ‖ timestamp ‖ packet
// (the relay's PUT body) for key.
func DecodeRelayPayload(key core.NodeID, b []byte) (*SignedPacket, error) {
	if len(b) > MaxRelayPayloadBytes {
		return nil, fmt.Errorf("dns: signed packet: %w: %d bytes", ErrTooLarge, len(b))
	}
	if len(b) < sigLen+tsLen {
		return nil, fmt.Errorf("dns: signed packet: %w: %d bytes", ErrBadPacket, len(b))
	}
	p := &SignedPacket{key: key, ts: binary.BigEndian.Uint64(b[sigLen:]), packet: bytes.Clone(b[sigLen+tsLen:])}
	copy(p.sig[:], b[:sigLen])
	if !ed25519.Verify(key.PublicKey(), signable(p.ts, p.packet), p.sig[:]) {
		return nil, fmt.Errorf("dns: signed packet: %w", ErrBadSignature)
	}
	var err error
	if p.records, err = parsePacket(p.packet, key); err != nil {
		return nil, fmt.Errorf("dns: signed packet: %w", err)
	}
	return p, nil
}

// parsePacket unpacks a DNS packet and makes its answer names end in the
// key's label.
func parsePacket(packet []byte, key core.NodeID) ([]mdns.RR, error) {
	m := new(mdns.Msg)
	if err := m.Unpack(packet); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadPacket, err)
	}
	out := make([]mdns.RR, 0, len(m.Answer))
	for _, rr := range m.Answer {
		if rr.Header().Class != mdns.ClassINET {
			continue
		}
		rr.Header().Name = keyName(rr.Header().Name, key)
		out = append(out, rr)
	}
	return out, nil
}

// keyName makes name end in key's label: "_a." and "_a.<z32>." both give
// "_a.<z32>.", "@", "." and "<z32>." give "<z32>.".
func keyName(name string, key core.NodeID) string {
	label := key.String()
	n := strings.TrimSuffix(mdns.CanonicalName(name), ".")
	switch {
	case n == "" || n == "@" || n == label:
		return label + "."
	case strings.HasSuffix(n, "."+label):
		return n + "."
	}
	return n + "." + label + "."
}

// Key returns the public key the packet is signed by.
func (p *SignedPacket) Key() core.NodeID { return p.key }

// Timestamp returns the packet's timestamp in microseconds since the epoch.
func (p *SignedPacket) Timestamp() uint64 { return p.ts }

// Time returns the packet's timestamp.
func (p *SignedPacket) Time() time.Time { return time.UnixMicro(int64(p.ts)) }

// Records returns copies of the packet's records, names ending in
// "<z32>.".
func (p *SignedPacket) Records() []mdns.RR {
	out := make([]mdns.RR, len(p.records))
	for i, rr := range p.records {
		out[i] = mdns.Copy(rr)
	}
	return out
}

// Bytes returns the full encoding: key ‖ signature ‖ timestamp ‖ packet.
func (p *SignedPacket) Bytes() []byte {
	return append(p.key.PublicKey()[:ed25519.PublicKeySize:ed25519.PublicKeySize], p.RelayPayload()...)
}

// RelayPayload returns signature ‖ timestamp ‖ packet, the relay body.
func (p *SignedPacket) RelayPayload() []byte {
	b := make([]byte, 0, sigLen+tsLen+len(p.packet))
	b = append(b, p.sig[:]...)
	b = binary.BigEndian.AppendUint64(b, p.ts)
	return append(b, p.packet...)
}

// minTTL returns the smallest record TTL, or def for an empty packet.
func (p *SignedPacket) minTTL(def uint32) uint32 {
	if len(p.records) == 0 {
		return def
	}
	m := p.records[0].Header().Ttl
	for _, rr := range p.records[1:] {
		m = min(m, rr.Header().Ttl)
	}
	return m
}
