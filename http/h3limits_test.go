package http

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// TestH3ReadHeaderTimeout: an HTTP/3 request whose headers drip, or never
// finish, is reset after read_header_timeout, as h2 and http/1.1 requests
// are; the connection's other requests go on.
func TestH3ReadHeaderTimeout(t *testing.T) {
	f := start(t, Limits{ReadHeaderTimeout: 500 * time.Millisecond})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	qc, err := quic.DialAddr(ctx, f.node.HostPort, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPNH3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	st, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A HEADERS frame (type 0x01) announcing 100 bytes, of which 3 come.
	if _, err := st.Write([]byte{0x01, 0x40, 100, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = st.Read(make([]byte, 1))
	var se *quic.StreamError
	if !errors.As(err, &se) {
		t.Fatalf("request with unfinished headers: %v after %v, want the stream reset", err, time.Since(start))
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("reset after %v, want about the 500ms read_header_timeout", d)
	}
}
