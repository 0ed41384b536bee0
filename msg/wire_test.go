package msg

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/alkdev/alknet/core"
)

// TestWriteFrameWireFormat pins docs/protocols/msg.md §2: length (4,
// counts type and body) || type (1) || body.
func TestWriteFrameWireFormat(t *testing.T) {
	var b bytes.Buffer
	if err := writeFrame(&b, opAck, []byte{9, 8}); err != nil {
		t.Fatal(err)
	}
	if want := []byte{0, 0, 0, 3, byte(opAck), 9, 8}; !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("frame %x, want %x", b.Bytes(), want)
	}
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		op   op
		body []byte
		err  error
	}{
		{"request", []byte{0, 0, 0, 3, byte(opFetch), 1, 2}, opFetch, []byte{1, 2}, nil},
		{"type only", []byte{0, 0, 0, 1, byte(opDirectory)}, opDirectory, []byte{}, nil},
		{"clean end", nil, 0, nil, io.EOF},
		{"empty frame", []byte{0, 0, 0, 0}, 0, nil, core.ErrEmptyFrame},
		{"over the max", []byte{0, 0, 0, 17, 1}, 0, nil, core.ErrFrameTooLarge},
		{"end inside the length", []byte{0, 0}, 0, nil, io.ErrUnexpectedEOF},
		{"end inside the body", []byte{0, 0, 0, 5, 1, 2}, 0, nil, core.ErrFrameTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, body, err := readFrame(bytes.NewReader(tc.in), 16, core.FrameLimits{})
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if typ != tc.op || !bytes.Equal(body, tc.body) {
				t.Fatalf("frame %#x %x, want %#x %x", byte(typ), body, byte(tc.op), tc.body)
			}
		})
	}
}
