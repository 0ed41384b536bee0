package netutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// chunkReader hands out its data in the sizes of reads, one per Read, and
// records how large each Read's buffer was.
type chunkReader struct {
	data  []byte
	reads []int
	bufs  []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	r.bufs = append(r.bufs, len(p))
	if len(r.reads) == 0 {
		return 0, io.EOF
	}
	n := min(r.reads[0], len(p))
	r.reads = r.reads[1:]
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// TestCopyBufferedBulk: a direction reads into its own 32 KiB until a read
// fills it, into 256 KiB while reads bring back 32 KiB or more, and into
// its own again after one brings back less; every byte arrives in order.
func TestCopyBufferedBulk(t *testing.T) {
	reads := []int{100, relayBuf, relayBulkBuf, 70000, relayBuf, relayBuf - 1, 5, relayBuf, 200000}
	wantBufs := []int{relayBuf, relayBuf, relayBulkBuf, relayBulkBuf, relayBulkBuf, relayBulkBuf, relayBuf, relayBuf, relayBulkBuf, relayBulkBuf}
	total := 0
	for _, n := range reads {
		total += n
	}
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(i * 7)
	}
	src := &chunkReader{data: data, reads: reads}
	var dst bytes.Buffer
	if err := copyBuffered(&dst, src); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.Bytes(), data) {
		t.Fatalf("copied %d bytes, not the %d sent in order", dst.Len(), total)
	}
	if fmt.Sprint(src.bufs) != fmt.Sprint(wantBufs) {
		t.Fatalf("read buffers %v; want %v", src.bufs, wantBufs)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken") }

// TestCopyBufferedWriteFails: a failed write ends the copy with its error.
func TestCopyBufferedWriteFails(t *testing.T) {
	src := &chunkReader{data: make([]byte, relayBuf), reads: []int{relayBuf}}
	if err := copyBuffered(failWriter{}, src); err == nil || err.Error() != "broken" {
		t.Fatalf("copy into a broken writer: %v", err)
	}
}

// TestCopyBufferedNoBulkLeft: with every bulk buffer out, a direction goes
// on with its own 32 KiB and every byte still arrives.
func TestCopyBufferedNoBulkLeft(t *testing.T) {
	var held []*[]byte
	for b := bulkBufs.Borrow(); b != nil; b = bulkBufs.Borrow() {
		held = append(held, b)
	}
	defer func() {
		for _, b := range held {
			bulkBufs.Return(b)
		}
	}()
	reads := []int{relayBuf, relayBuf, 100}
	data := make([]byte, 2*relayBuf+100)
	for i := range data {
		data[i] = byte(i)
	}
	src := &chunkReader{data: data, reads: reads}
	var dst bytes.Buffer
	if err := copyBuffered(&dst, src); err != nil || !bytes.Equal(dst.Bytes(), data) {
		t.Fatalf("copy without bulk buffers: %d bytes, %v", dst.Len(), err)
	}
	for _, n := range src.bufs {
		if n != relayBuf {
			t.Fatalf("read buffers %v; want only the direction's own", src.bufs)
		}
	}
}
