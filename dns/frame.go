package dns

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/alkdev/alknet/core"
)

// minMessageBytes is a DNS header's size; shorter frames are malformed.
const minMessageBytes = 12

// errFraming is a broken length-prefixed frame: zero or short length, or
// an end inside the frame.
var errFraming = errors.New("bad frame")

// readFrame reads one 2-byte length-prefixed message (RFC 1035 §4.2.2,
// RFC 7858, RFC 9250) with core's frame codec, its buffer growing with the
// bytes received and charged to budget (nil: none; over it,
// core.ErrOverBudget). The caller's deadlines bound the time. A clean end
// before the prefix returns io.EOF; an end inside the frame, a zero length
// or a frame shorter than min bytes returns an error wrapping errFraming.
func readFrame(r io.Reader, min int, budget *core.Budget) ([]byte, error) {
	b, err := core.FrameLimits{Budget: budget, HeaderBytes: 2}.ReadFrame(r, math.MaxUint16)
	switch {
	case errors.Is(err, core.ErrFrameTruncated):
		return nil, fmt.Errorf("%w: %w", errFraming, err)
	case errors.Is(err, core.ErrEmptyFrame):
		return nil, fmt.Errorf("%w: length 0", errFraming)
	case err != nil:
		return nil, err
	case len(b) < min:
		return nil, fmt.Errorf("%w: length %d", errFraming, len(b))
	}
	return b, nil
}

// appendFrame appends msg (at most 65535 bytes) with its 2-byte length
// prefix.
func appendFrame(dst, msg []byte) []byte {
	return core.FrameLimits{HeaderBytes: 2}.AppendFrame(dst, msg)
}
