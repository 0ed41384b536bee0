package core_test

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// pipeStream is one end of a net.Pipe as a core.Stream.
type pipeStream struct{ net.Conn }

func (p pipeStream) CloseWrite() error    { return p.Conn.Close() }
func (p pipeStream) Abort(core.ErrorCode) { p.Conn.Close() }

// TestStreamConnSurvivesReadDeadline checks that a read deadline passing on
// a single-stream connection's stream does not end the connection: the
// next read after a new deadline goes on.
func TestStreamConnSurvivesReadDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	conn := core.NewStreamConn(pipeStream{a}, "test/a", core.Peer{}, nil)
	defer conn.CloseWithError(core.CodeNoError, "")
	st, err := conn.AcceptStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := st.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	if err := conn.Context().Err(); err != nil {
		t.Fatalf("the connection ended on a read deadline: %v", context.Cause(conn.Context()))
	}
	st.SetReadDeadline(time.Time{})
	go b.Write([]byte("x"))
	buf := make([]byte, 1)
	if n, err := st.Read(buf); n != 1 || err != nil || buf[0] != 'x' {
		t.Fatalf("read after the deadline: %d %v", n, err)
	}
}
