package fs

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/alkdev/alknet/core"
)

// TestWriteFrameWireFormat pins docs/protocols/fs.md "Frames": a 4-byte
// big-endian length, then that many bytes of JSON.
func TestWriteFrameWireFormat(t *testing.T) {
	var b bytes.Buffer
	if err := writeFrame(&b, Request{Op: OpHas}); err != nil {
		t.Fatal(err)
	}
	body := `{"op":"has"}`
	want := append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("frame %q, want %q", b.Bytes(), want)
	}
}

// TestBadRequestFrames: a request frame the handler cannot read is
// answered with bad_request, whoever sends it.
func TestBadRequestFrames(t *testing.T) {
	lenOnly := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	tests := []struct {
		name string
		anon bool
		in   []byte
	}{
		{"zero length", false, lenOnly(0)},
		{"over the limit", false, lenOnly(MaxRequestBytes + 1)},
		{"over the anonymous limit", true, lenOnly(MaxAnonRequestBytes + 1)},
		{"end inside the length", false, []byte{0, 0}},
		{"end inside the body", false, append(lenOnly(100), `{"op":`...)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sv := startServer(t, true)
			key := sv.reader
			if tc.anon {
				key = nil
			}
			conn := sv.node.Dial(t, core.NetworkQUIC, key, ALPN)
			st, err := conn.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Abort(codeFailed) })
			if _, err := st.Write(tc.in); err != nil {
				t.Fatal(err)
			}
			if err := st.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			_, err = readResponse(st)
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != CodeBadRequest {
				t.Fatalf("answer %v, want remote %s", err, CodeBadRequest)
			}
		})
	}
}
