package core

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// FrameHeaderBytes is the length prefix of a frame: a 4-byte unsigned
// big-endian count of the bytes that follow. The call, msg and fs protocols
// frame their streams so (docs/protocols/call.md, msg.md, fs.md).
const FrameHeaderBytes = 4

// Frame errors. A frame error leaves the stream unusable: the reader cannot
// find the next frame boundary.
var (
	// ErrEmptyFrame is a frame whose length is zero.
	ErrEmptyFrame = errors.New("core: zero-length frame")
	// ErrFrameTooLarge is a frame longer than the reader's maximum,
	// refused before its body is read.
	ErrFrameTooLarge = errors.New("core: frame too large")
	// ErrFrameTruncated is a stream that ended inside a frame's length
	// or body. It matches io.ErrUnexpectedEOF too.
	ErrFrameTruncated = fmt.Errorf("core: truncated frame: %w", io.ErrUnexpectedEOF)
)

// ReadFrame reads one length-prefixed frame of at most max bytes and
// returns its body. The prefix is l.HeaderBytes long (0: 4 bytes,
// [FrameHeaderBytes]). An oversized length is refused before anything is
// allocated, and the body is read by [FrameLimits.ReadBody]: its buffer
// grows with the bytes received, charged to l.Budget, and a started frame
// must arrive at l's rate. No deadline applies before the length arrives.
//
// Errors: io.EOF when the stream ended cleanly between frames,
// [ErrEmptyFrame], [ErrFrameTooLarge], [ErrFrameTruncated], or those of
// ReadBody ([ErrOverBudget], [ErrFrameTooSlow], the read error); an
// error wrapping [ErrBadFrameHeader] when l.HeaderBytes is neither 0, 2
// nor 4.
func (l FrameLimits) ReadFrame(r io.Reader, max int) ([]byte, error) {
	size, err := l.headerBytes()
	if err != nil {
		return nil, err
	}
	var buf [FrameHeaderBytes]byte
	hdr := buf[:size]
	if _, err := io.ReadFull(r, hdr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrFrameTruncated
		}
		return nil, err
	}
	var n uint32
	if size == 2 {
		n = uint32(binary.BigEndian.Uint16(hdr))
	} else {
		n = binary.BigEndian.Uint32(hdr)
	}
	switch {
	case n == 0:
		return nil, ErrEmptyFrame
	case max < 0 || uint64(n) > uint64(max):
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, n, max)
	}
	body, err := l.ReadBody(r, int(n))
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, ErrFrameTruncated
	}
	return body, err
}

// ErrBadFrameHeader is a [FrameLimits.HeaderBytes] other than 0, 2 or 4.
var ErrBadFrameHeader = errors.New("core: frame header size not 2 or 4 bytes")

// headerBytes returns the length prefix's size: 2 or 4.
func (l FrameLimits) headerBytes() (int, error) {
	switch l.HeaderBytes {
	case 0, FrameHeaderBytes:
		return FrameHeaderBytes, nil
	case 2:
		return 2, nil
	}
	return 0, fmt.Errorf("%w: %d", ErrBadFrameHeader, l.HeaderBytes)
}

// AppendFrame appends the frame of body with l's length prefix
// (l.HeaderBytes: 0 or 4 bytes as [AppendFrame], or 2) to dst. body must
// be 1..65535 bytes with a 2-byte prefix, 1..2^32-1 with a 4-byte one:
// a writer that cannot bound its frame checks the length first, as a
// reader would refuse it anyway. An l.HeaderBytes other than 0, 2 or 4
// is a programmer error: AppendFrame panics.
func (l FrameLimits) AppendFrame(dst, body []byte) []byte {
	size, err := l.headerBytes()
	if err != nil {
		panic(err)
	}
	if size == 2 {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(body)))
		return append(dst, body...)
	}
	return AppendFrame(dst, body)
}

// AppendFrameHeader appends the length prefix of an n-byte frame body to
// dst; the caller appends the body. n must be in 1..2^32-1: a writer that
// cannot bound its frame checks the length first, as a reader would refuse
// it anyway.
func AppendFrameHeader(dst []byte, n int) []byte {
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// AppendFrame appends the frame of body (length prefix and body) to dst.
func AppendFrame(dst, body []byte) []byte {
	return append(AppendFrameHeader(dst, len(body)), body...)
}
