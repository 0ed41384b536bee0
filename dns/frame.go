package dns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// minMessageBytes is a DNS header's size; shorter frames are malformed.
const minMessageBytes = 12

// errFraming is a broken length-prefixed frame: zero or short length, or
// an end inside the frame.
var errFraming = errors.New("bad frame")

// readFrame reads one 2-byte length-prefixed message (RFC 1035 §4.2.2,
// RFC 7858, RFC 9250). A clean end before the prefix returns io.EOF; an
// end inside the frame or a frame shorter than a DNS header returns an
// error wrapping errFraming.
func readFrame(r io.Reader, min int) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: end inside the length", errFraming)
		}
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n < max(min, 1) {
		return nil, fmt.Errorf("%w: length %d", errFraming, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: end inside a %d-byte message", errFraming, n)
		}
		return nil, err
	}
	return b, nil
}

// appendFrame appends msg with its 2-byte length prefix.
func appendFrame(dst, msg []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}
