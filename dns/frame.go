package dns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/alkdev/alknet/core"
)

// minMessageBytes is a DNS header's size; shorter frames are malformed.
const minMessageBytes = 12

// errFraming is a broken length-prefixed frame: zero or short length, or
// an end inside the frame.
var errFraming = errors.New("bad frame")

// readFrame reads one 2-byte length-prefixed message (RFC 1035 §4.2.2,
// RFC 7858, RFC 9250), its buffer growing with the bytes received and
// charged to budget (nil: none; over it, core.ErrOverBudget). The caller's
// deadlines bound the time. A clean end before the prefix returns io.EOF;
// an end inside the frame or a frame shorter than a DNS header returns an
// error wrapping errFraming.
func readFrame(r io.Reader, min int, budget *core.Budget) ([]byte, error) {
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
	b, err := core.FrameLimits{Budget: budget}.ReadBody(r, n)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: end inside a %d-byte message", errFraming, n)
	}
	return b, err
}

// appendFrame appends msg with its 2-byte length prefix.
func appendFrame(dst, msg []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msg)))
	return append(dst, msg...)
}
