package msg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/alkdev/alknet/core"
)

// Version is the envelope format version this package writes and reads.
const Version = 1

// Limits and defaults of envelopes.
const (
	// DefaultMaxBodyBytes is the largest body accepted when a limit is zero.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultSkew is how far an envelope's time may lie from the receiver's
	// clock, either way, when a skew is zero.
	DefaultSkew = 5 * time.Minute
	// MaxContentTypeBytes bounds the content type.
	MaxContentTypeBytes = 255
	// headerSize is the clear part of an envelope: version, recipient, enc.
	headerSize = 1 + KeySize + KeySize
	// innerFixed is the inner plaintext without content type, body, padding.
	innerFixed = 2*KeySize + 8 + IDSize + 1 + 4 + ed25519.SignatureSize
	// aeadOverhead is the Poly1305 tag.
	aeadOverhead = 16
)

// IDSize is the length of a message id.
const IDSize = 16

// buckets are the padded sizes of the inner plaintext; larger ones are
// padded to a multiple of the last bucket (docs/protocols/msg.md).
var buckets = [...]int{1 << 10, 4 << 10, 16 << 10, 64 << 10}

// Errors of opening an envelope, matched with errors.Is.
var (
	// ErrMalformed: the envelope does not parse.
	ErrMalformed = errors.New("malformed envelope")
	// ErrVersion: the envelope has a version this package does not know.
	ErrVersion = errors.New("unknown envelope version")
	// ErrWrongRecipient: the envelope is addressed to another node.
	ErrWrongRecipient = errors.New("envelope for another recipient")
	// ErrDecrypt: the ciphertext or its clear header was changed, or it was
	// not sealed to this key.
	ErrDecrypt = errors.New("envelope does not decrypt")
	// ErrBadSignature: the sender's signature does not verify.
	ErrBadSignature = errors.New("bad sender signature")
	// ErrSkew: the envelope's time is too old or in the future.
	ErrSkew = errors.New("envelope time outside the allowed skew")
	// ErrDuplicate: the message id was already received from this sender.
	ErrDuplicate = errors.New("duplicate message")
	// ErrTooLarge: the body exceeds the limit.
	ErrTooLarge = errors.New("message too large")
)

// hpkeInfo is the HPKE info string of version 1.
const hpkeInfo = "alknet/msg envelope v1"

// sigContext separates envelope signatures from other uses of node keys.
const sigContext = "alknet/msg signature v1\x00"

// MessageID identifies a message among its sender's.
type MessageID [IDSize]byte

// String returns the id in hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// Message is the content of an envelope.
type Message struct {
	// From is the sender; Seal sets it from the signing key.
	From core.NodeID
	// To is the recipient; required.
	To core.NodeID
	// Time is when the message was sealed (millisecond precision); Seal
	// sets it to now when zero.
	Time time.Time
	// ID is the message id; Seal picks a random one when zero.
	ID MessageID
	// ContentType describes Body, at most 255 bytes ("text/plain" say).
	ContentType string
	// Body is the content.
	Body []byte
}

// Seal signs m with the sender's node key and seals it to the recipient's
// messaging key, returning the envelope. It fills m's From, and Time and ID
// when zero, and returns the message as sealed.
func Seal(sender ed25519.PrivateKey, to *ecdh.PublicKey, m Message) ([]byte, Message, error) {
	from, err := core.NodeIDFromPublicKey(sender.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, m, fmt.Errorf("msg: seal: %w", err)
	}
	m.From = from
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	m.Time = time.UnixMilli(m.Time.UnixMilli())
	if m.ID == (MessageID{}) {
		rand.Read(m.ID[:])
	}
	inner, err := encodeInner(m)
	if err != nil {
		return nil, m, err
	}
	sig := ed25519.Sign(sender, signed(inner))
	inner = pad(append(inner, sig...))
	env, err := sealInner(to, m.To, inner)
	return env, m, err
}

// encodeInner encodes m without signature and padding.
func encodeInner(m Message) ([]byte, error) {
	if m.To.IsZero() {
		return nil, errors.New("msg: seal: no recipient")
	}
	if len(m.ContentType) > MaxContentTypeBytes {
		return nil, fmt.Errorf("msg: seal: content type is %d bytes, limit %d", len(m.ContentType), MaxContentTypeBytes)
	}
	if int64(len(m.Body)) > 1<<31 {
		return nil, fmt.Errorf("msg: seal: %w", ErrTooLarge)
	}
	b := make([]byte, 0, innerFixed+len(m.ContentType)+len(m.Body))
	b = append(b, m.From.PublicKey()...)
	b = append(b, m.To.PublicKey()...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.Time.UnixMilli()))
	b = append(b, m.ID[:]...)
	b = append(b, byte(len(m.ContentType)))
	b = append(b, m.ContentType...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Body)))
	return append(b, m.Body...), nil
}

// signed is what the sender's signature covers.
func signed(inner []byte) []byte {
	return append([]byte(sigContext), inner...)
}

// PaddedSize returns the padded inner size for n bytes of inner plaintext.
func PaddedSize(n int) int {
	for _, b := range buckets {
		if n <= b {
			return b
		}
	}
	last := buckets[len(buckets)-1]
	return (n + last - 1) / last * last
}

// pad appends zeros up to the bucket size.
func pad(b []byte) []byte {
	return append(b, make([]byte, PaddedSize(len(b))-len(b))...)
}

// sealInner seals a padded inner plaintext to key for recipient.
func sealInner(key *ecdh.PublicKey, recipient core.NodeID, inner []byte) ([]byte, error) {
	pk, err := hpke.NewDHKEMPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("msg: seal: %w", err)
	}
	enc, s, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(hpkeInfo))
	if err != nil {
		return nil, fmt.Errorf("msg: seal: %w", err)
	}
	env := make([]byte, 0, headerSize+len(inner)+aeadOverhead)
	env = append(env, Version)
	env = append(env, recipient.PublicKey()...)
	env = append(env, enc...)
	ct, err := s.Seal(env[:1+KeySize], inner)
	if err != nil {
		return nil, fmt.Errorf("msg: seal: %w", err)
	}
	return append(env, ct...), nil
}

// MaxEnvelopeBytes returns the size of the largest envelope whose body is
// at most maxBody bytes (and content type at most 255 bytes).
func MaxEnvelopeBytes(maxBody int) int {
	return headerSize + PaddedSize(innerFixed+MaxContentTypeBytes+maxBody) + aeadOverhead
}

// Recipient returns the recipient named in an envelope's clear header; it
// checks the version and the size, not the contents.
func Recipient(env []byte) (core.NodeID, error) {
	if len(env) < 1 {
		return core.NodeID{}, fmt.Errorf("msg: %w: empty", ErrMalformed)
	}
	if env[0] != Version {
		return core.NodeID{}, fmt.Errorf("msg: %w %d", ErrVersion, env[0])
	}
	if len(env) < headerSize+buckets[0]+aeadOverhead {
		return core.NodeID{}, fmt.Errorf("msg: %w: %d bytes", ErrMalformed, len(env))
	}
	id, err := core.NodeIDFromPublicKey(ed25519.PublicKey(env[1 : 1+KeySize]))
	if err != nil {
		return core.NodeID{}, fmt.Errorf("msg: %w: recipient: %v", ErrMalformed, err)
	}
	return id, nil
}

// Opener opens envelopes sealed to one node. Open has no state, so an
// Opener is safe for concurrent use; for duplicate detection see [Receiver].
type Opener struct {
	// Key is the node's messaging key; required.
	Key *ecdh.PrivateKey
	// NodeID is the node; envelopes for anyone else are refused.
	NodeID core.NodeID
	// MaxBodyBytes caps the body; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int
	// Skew is how far an envelope's time may be from now; zero means
	// DefaultSkew.
	Skew time.Duration
}

// Open decrypts env, checks that it is for this node, that the sender's
// signature verifies and that its time is within the skew of now, and
// returns the message. Errors wrap ErrMalformed, ErrVersion,
// ErrWrongRecipient, ErrDecrypt, ErrBadSignature, ErrSkew or ErrTooLarge.
func (o *Opener) Open(env []byte, now time.Time) (*Message, error) {
	to, err := Recipient(env)
	if err != nil {
		return nil, err
	}
	if to != o.NodeID {
		return nil, fmt.Errorf("msg: %w", ErrWrongRecipient)
	}
	maxBody := o.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	if len(env) > MaxEnvelopeBytes(maxBody) {
		return nil, fmt.Errorf("msg: %w: envelope of %d bytes", ErrTooLarge, len(env))
	}
	sk, err := hpke.NewDHKEMPrivateKey(o.Key)
	if err != nil {
		return nil, fmt.Errorf("msg: open: %w", err)
	}
	r, err := hpke.NewRecipient(env[1+KeySize:headerSize], sk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), []byte(hpkeInfo))
	if err != nil {
		return nil, fmt.Errorf("msg: %w", ErrDecrypt)
	}
	inner, err := r.Open(env[:1+KeySize], env[headerSize:])
	if err != nil {
		return nil, fmt.Errorf("msg: %w", ErrDecrypt)
	}
	m, err := decodeInner(inner, maxBody)
	if err != nil {
		return nil, err
	}
	if m.To != to {
		return nil, fmt.Errorf("msg: %w", ErrWrongRecipient)
	}
	skew := o.Skew
	if skew <= 0 {
		skew = DefaultSkew
	}
	if d := now.Sub(m.Time); d > skew || d < -skew {
		return nil, fmt.Errorf("msg: %w (%s)", ErrSkew, d.Round(time.Second))
	}
	return m, nil
}

// decodeInner parses and verifies a decrypted inner plaintext.
func decodeInner(b []byte, maxBody int) (*Message, error) {
	bad := func(what string) error { return fmt.Errorf("msg: %w: %s", ErrMalformed, what) }
	if len(b) < innerFixed {
		return nil, bad("short")
	}
	var m Message
	from, err := core.NodeIDFromPublicKey(ed25519.PublicKey(b[:KeySize]))
	if err != nil {
		return nil, bad("sender")
	}
	to, err := core.NodeIDFromPublicKey(ed25519.PublicKey(b[KeySize : 2*KeySize]))
	if err != nil {
		return nil, bad("recipient")
	}
	m.From, m.To = from, to
	p := 2 * KeySize
	ms := binary.BigEndian.Uint64(b[p:])
	if ms > 1<<62 {
		return nil, bad("time")
	}
	m.Time = time.UnixMilli(int64(ms))
	p += 8
	copy(m.ID[:], b[p:])
	p += IDSize
	ctLen := int(b[p])
	p++
	if len(b)-p < ctLen+4+ed25519.SignatureSize {
		return nil, bad("content type")
	}
	m.ContentType = string(b[p : p+ctLen])
	p += ctLen
	bodyLen := binary.BigEndian.Uint32(b[p:])
	p += 4
	if int64(bodyLen) > int64(maxBody) {
		return nil, fmt.Errorf("msg: %w: body of %d bytes, limit %d", ErrTooLarge, bodyLen, maxBody)
	}
	if int64(len(b)-p) < int64(bodyLen)+ed25519.SignatureSize {
		return nil, bad("body")
	}
	m.Body = append([]byte{}, b[p:p+int(bodyLen)]...)
	p += int(bodyLen)
	sig := b[p : p+ed25519.SignatureSize]
	if !bytes.Equal(b[p+ed25519.SignatureSize:], make([]byte, len(b)-p-ed25519.SignatureSize)) {
		return nil, bad("padding")
	}
	if len(b) != PaddedSize(p+ed25519.SignatureSize) {
		return nil, bad("padding")
	}
	if !ed25519.Verify(m.From.PublicKey(), signed(b[:p]), sig) {
		return nil, fmt.Errorf("msg: %w", ErrBadSignature)
	}
	return &m, nil
}
