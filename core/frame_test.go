package core_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/alkdev/alknet/core"
)

func TestReadFrame(t *testing.T) {
	frame := func(s string) []byte { return core.AppendFrame(nil, []byte(s)) }
	two := core.FrameLimits{HeaderBytes: 2}
	short := func(s string) []byte { return two.AppendFrame(nil, []byte(s)) }
	tests := []struct {
		name string
		in   []byte
		lim  core.FrameLimits
		want string
		err  error
	}{
		{"one frame", frame("hello"), core.FrameLimits{}, "hello", nil},
		{"at the max", frame(strings.Repeat("x", 100)), core.FrameLimits{}, strings.Repeat("x", 100), nil},
		{"clean end", nil, core.FrameLimits{}, "", io.EOF},
		{"zero length", []byte{0, 0, 0, 0}, core.FrameLimits{}, "", core.ErrEmptyFrame},
		{"4 GiB claimed", []byte{0xff, 0xff, 0xff, 0xff}, core.FrameLimits{}, "", core.ErrFrameTooLarge},
		{"over the max", frame(strings.Repeat("x", 101)), core.FrameLimits{}, "", core.ErrFrameTooLarge},
		{"truncated prefix", []byte{0, 0}, core.FrameLimits{}, "", core.ErrFrameTruncated},
		{"truncated body", []byte{0, 0, 0, 9, 'a'}, core.FrameLimits{}, "", core.ErrFrameTruncated},
		{"over the budget", frame(strings.Repeat("x", 100)), core.FrameLimits{Budget: core.NewBudget(50, nil)}, "", core.ErrOverBudget},
		{"2-byte prefix", short("hello"), two, "hello", nil},
		{"2-byte prefix, 4 given", []byte{0, 0, 0, 5, 'h'}, two, "", core.ErrEmptyFrame},
		{"2-byte zero length", []byte{0, 0}, two, "", core.ErrEmptyFrame},
		{"2-byte 64 KiB claimed", []byte{0xff, 0xff}, two, "", core.ErrFrameTooLarge},
		{"2-byte truncated prefix", []byte{0}, two, "", core.ErrFrameTruncated},
		{"2-byte truncated body", []byte{0, 9, 'a'}, two, "", core.ErrFrameTruncated},
		{"4-byte prefix named", frame("hi"), core.FrameLimits{HeaderBytes: 4}, "hi", nil},
		{"3-byte prefix", frame("hi"), core.FrameLimits{HeaderBytes: 3}, "", core.ErrBadFrameHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.lim.ReadFrame(bytes.NewReader(tc.in), 100)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if string(got) != tc.want {
				t.Fatalf("body %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFrameTruncatedIsUnexpectedEOF: callers that matched the stream's
// io.ErrUnexpectedEOF before the shared codec still do.
func TestFrameTruncatedIsUnexpectedEOF(t *testing.T) {
	if !errors.Is(core.ErrFrameTruncated, io.ErrUnexpectedEOF) {
		t.Fatal("ErrFrameTruncated does not match io.ErrUnexpectedEOF")
	}
}

// TestAppendFrameWireFormat pins the prefix: 4 bytes, big-endian, counting
// the body only.
func TestAppendFrameWireFormat(t *testing.T) {
	got := core.AppendFrame([]byte{0xaa}, []byte("abc"))
	want := []byte{0xaa, 0, 0, 0, 3, 'a', 'b', 'c'}
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendFrame = %x, want %x", got, want)
	}
	if got := core.AppendFrameHeader(nil, 0x01020304); !bytes.Equal(got, []byte{1, 2, 3, 4}) {
		t.Fatalf("AppendFrameHeader = %x", got)
	}
	for _, tc := range []struct {
		header int
		want   []byte
	}{
		{0, []byte{0xaa, 0, 0, 0, 3, 'a', 'b', 'c'}},
		{4, []byte{0xaa, 0, 0, 0, 3, 'a', 'b', 'c'}},
		{2, []byte{0xaa, 0, 3, 'a', 'b', 'c'}},
	} {
		if got := (core.FrameLimits{HeaderBytes: tc.header}).AppendFrame([]byte{0xaa}, []byte("abc")); !bytes.Equal(got, tc.want) {
			t.Errorf("HeaderBytes %d: AppendFrame = %x, want %x", tc.header, got, tc.want)
		}
	}
}

// FuzzReadFrame: any byte stream read as frames yields bodies of 1..max
// bytes that re-encode to exactly the bytes consumed, or ends with an
// error; never a panic, and the budget is always released.
func FuzzReadFrame(f *testing.F) {
	frame := func(s string) []byte { return core.AppendFrame(nil, []byte(s)) }
	short := func(s string) []byte { return core.FrameLimits{HeaderBytes: 2}.AppendFrame(nil, []byte(s)) }
	f.Add(frame("hello"), uint16(64), uint16(8), false)                       // one frame
	f.Add(append(frame("a"), frame("bc")...), uint16(64), uint16(8), false)   // two frames
	f.Add([]byte{0, 0, 0, 0}, uint16(64), uint16(8), false)                   // zero length
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint16(64), uint16(8), false)       // 4 GiB claimed
	f.Add([]byte{0, 0, 1}, uint16(64), uint16(8), false)                      // truncated prefix
	f.Add(append(frame("{}"), 0, 0, 0, 5, 'x'), uint16(64), uint16(8), false) // good, then truncated
	f.Add(frame(strings.Repeat("x", 9000)), uint16(10000), uint16(4), false)  // over a 4 KiB budget
	f.Add(frame(strings.Repeat("x", 101)), uint16(100), uint16(0), false)     // over the max
	f.Add(short("hello"), uint16(64), uint16(8), true)                        // 2-byte prefix
	f.Add([]byte{0xff, 0xff, 1}, uint16(64), uint16(8), true)                 // 2-byte prefix: 64 KiB claimed
	f.Add(append(short("ab"), 0), uint16(64), uint16(8), true)                // good, then truncated prefix
	f.Add(short(strings.Repeat("x", 9000)), uint16(10000), uint16(4), true)   // 2-byte prefix over the budget
	f.Fuzz(func(t *testing.T, in []byte, max, budgetKiB uint16, twoBytes bool) {
		lim := core.FrameLimits{Budget: core.NewBudget(int64(budgetKiB)<<10, nil)}
		if twoBytes {
			lim.HeaderBytes = 2
		}
		r := bytes.NewReader(in)
		var again []byte
		for {
			body, err := lim.ReadFrame(r, int(max))
			if err != nil {
				break
			}
			if len(body) == 0 || len(body) > int(max) {
				t.Fatalf("frame of %d bytes, limit %d", len(body), max)
			}
			again = lim.AppendFrame(again, body)
		}
		if !bytes.HasPrefix(in, again) {
			t.Fatal("the frames read do not re-encode to the input")
		}
		if u := lim.Budget.Used(); u != 0 {
			t.Fatalf("%d bytes still charged", u)
		}
	})
}
