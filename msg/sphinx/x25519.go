package sphinx

import (
	"crypto/subtle"
	"errors"

	"filippo.io/edwards25519/field"
)

// errLowOrder is x25519's answer to a point of small order, whose product
// is all zeros (RFC 7748 §6.1), as crypto/ecdh's ECDH refuses it.
var errLowOrder = errors.New("sphinx: X25519 of a low-order point")

// x25519 multiplies the point u by the clamped scalar: the X25519 function
// of RFC 7748 §5, one Montgomery ladder over filippo.io/edwards25519's
// constant-time field arithmetic. crypto/ecdh has no raw scalar
// multiplication: its NewPrivateKey also computes the scalar's public key,
// a second ladder that a Sphinx hop's blinding (a fresh scalar per packet)
// would throw away on every hop, and golang.org/x/crypto/curve25519 is
// built on it.
func x25519(scalar, u []byte) ([]byte, error) {
	if len(scalar) != 32 || len(u) != 32 {
		return nil, errors.New("sphinx: X25519 input of the wrong size")
	}
	var k [32]byte
	copy(k[:], scalar)
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64

	var x1, x2, z2, x3, z3, a, aa, b, bb, e, c, d, da, cb, t field.Element
	if _, err := x1.SetBytes(u); err != nil { // ignores the top bit, as RFC 7748 says
		return nil, err
	}
	x2.One()
	z2.Zero()
	x3.Set(&x1)
	z3.One()
	swap := 0
	for pos := 254; pos >= 0; pos-- {
		bit := int(k[pos/8]>>(pos&7)) & 1
		swap ^= bit
		x2.Swap(&x3, swap)
		z2.Swap(&z3, swap)
		swap = bit

		a.Add(&x2, &z2)
		aa.Square(&a)
		b.Subtract(&x2, &z2)
		bb.Square(&b)
		e.Subtract(&aa, &bb)
		c.Add(&x3, &z3)
		d.Subtract(&x3, &z3)
		da.Multiply(&d, &a)
		cb.Multiply(&c, &b)
		x3.Add(&da, &cb)
		x3.Square(&x3)
		z3.Subtract(&da, &cb)
		z3.Square(&z3)
		z3.Multiply(&z3, &x1)
		x2.Multiply(&aa, &bb)
		t.Mult32(&e, 121665) // a24 = (486662 - 2) / 4
		t.Add(&t, &aa)
		z2.Multiply(&e, &t)
	}
	x2.Swap(&x3, swap)
	z2.Swap(&z3, swap)

	z2.Invert(&z2)
	x2.Multiply(&x2, &z2)
	out := x2.Bytes()
	var zero [32]byte
	if subtle.ConstantTimeCompare(out, zero[:]) == 1 {
		return nil, errLowOrder
	}
	return out, nil
}
