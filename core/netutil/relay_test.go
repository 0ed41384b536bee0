package netutil

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln := listen(t)
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// noHalfClose hides a connection's CloseWrite.
type noHalfClose struct{ net.Conn }

// TestRelayHalfClose: each side's half-close reaches the other while the
// other direction still flows; a side without a half-close is closed at
// the end of what it receives.
func TestRelayHalfClose(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hideCloseB  bool
		wantBToRead bool // b still gets its answer after a's half-close
	}{
		{"both half-close", false, true},
		{"b has no half-close", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, ra := tcpPair(t)
			b, rb := tcpPair(t)
			var relayB io.ReadWriteCloser = rb
			if tc.hideCloseB {
				relayB = noHalfClose{rb}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				Relay(context.Background(), ra, relayB)
			}()
			deadline := time.Now().Add(5 * time.Second)
			a.SetDeadline(deadline)
			b.SetDeadline(deadline)

			if _, err := a.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			a.CloseWrite()
			got, err := io.ReadAll(b)
			if err != nil || string(got) != "request" {
				t.Fatalf("b read %q, %v; want the request, then EOF", got, err)
			}
			_, err = b.Write([]byte("answer"))
			if err == nil {
				b.CloseWrite()
			}
			got, _ = io.ReadAll(a)
			if tc.wantBToRead != bytes.Equal(got, []byte("answer")) {
				t.Errorf("a read %q after its half-close; want the answer: %v", got, tc.wantBToRead)
			}
			b.Close()
			<-done
		})
	}
}

// TestRelayCtxEnds: ctx ending closes both sides of a relay in progress.
func TestRelayCtxEnds(t *testing.T) {
	a, ra := tcpPair(t)
	b, rb := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Relay(ctx, ra, rb)
	}()
	cancel()
	<-done
	for name, c := range map[string]net.Conn{"a": a, "b": b} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s read %d, %v after ctx ended; want EOF", name, n, err)
		}
	}
}
