//go:build unix

package core

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// tlsStreamPair returns the two ends of a TLS 1.3 connection over loopback
// TCP, each as the tlsStream an Endpoint or a Dialer makes.
func tlsStreamPair(t *testing.T) (client, server tlsStream) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := NodeCertificate(key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *tls.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		tc := tls.Server(overTCP(nc), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
		if tc.Handshake() != nil {
			tc.Close()
			tc = nil
		}
		accepted <- tc
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(overTCP(nc), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("server handshake failed")
	}
	client, server = newTLSStream(tc), newTLSStream(sc)
	if client.sock == nil || server.sock == nil {
		t.Fatal("a TLS stream over TCP has no socket to gather from")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// waitQueued waits until the kernel holds at least n bytes for s to read.
func waitQueued(t *testing.T, s tlsStream, n int) {
	t.Helper()
	buf := make([]byte, n)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var got int
		_ = s.sock.raw.Read(func(fd uintptr) bool {
			got, _, _ = recvPeek(fd, buf)
			return true
		})
		if got >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("the socket never held %d bytes", n)
}

// TestTLSStreamGathers: a Read whose first record is full goes on to take
// every record already on the socket, one that is not full returns alone,
// and a read without waiting that finds nothing leaves the connection as
// good as before, a partial record included.
func TestTLSStreamGathers(t *testing.T) {
	client, server := tlsStreamPair(t)
	const records = 6
	sent := make([]byte, records*maxTLSRecord)
	_, _ = rand.Read(sent)
	// crypto/tls sends its first 128 KiB in records of about one TCP
	// segment (dynamic record sizing); full records come after.
	warmUp := make([]byte, 160<<10)
	go func() { _, _ = client.Write(warmUp) }()
	if _, err := io.ReadFull(server, warmUp); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(sent); err != nil {
		t.Fatal(err)
	}
	// Every record sits on the socket: TLS 1.3 adds 22 bytes to each.
	waitQueued(t, server, records*(maxTLSRecord+22))
	buf := make([]byte, 256<<10)
	n, err := server.Read(buf)
	if err != nil || n != len(sent) || !bytes.Equal(buf[:n], sent) {
		t.Fatalf("one Read of %d queued records: %d bytes, %v; want all %d", records, n, err, len(sent))
	}

	// A short record returns by itself, even with more queued behind it.
	if _, err := client.Write([]byte("short")); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write(sent[:maxTLSRecord]); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, server, 5+22+maxTLSRecord+22)
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "short" {
		t.Fatalf("Read after a short record: %q, %v", buf[:min(n, 16)], err)
	}
	if n, err := server.Read(buf); err != nil || n != maxTLSRecord {
		t.Fatalf("Read of the full record behind it: %d, %v", n, err)
	}

	// A full record, then half of the next: the gathering read stops at
	// the half and the next Read waits for the rest.
	whole := sent[:2*maxTLSRecord]
	if _, err := client.Write(whole); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, server, 2*(maxTLSRecord+22))
	n, err = server.Read(buf[:maxTLSRecord+maxTLSRecord/2])
	if err != nil || n != maxTLSRecord+maxTLSRecord/2 {
		t.Fatalf("Read into a record and a half: %d, %v", n, err)
	}
	rest, err := io.ReadFull(server, buf[n:2*maxTLSRecord])
	if err != nil || !bytes.Equal(buf[:n+rest], whole) {
		t.Fatalf("the rest: %d, %v", rest, err)
	}

	// Nothing queued after a full record: the connection keeps working,
	// and a record sent later arrives whole.
	if _, err := client.Write(sent[:maxTLSRecord]); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(buf); err != nil || n != maxTLSRecord {
		t.Fatalf("a lone full record: %d, %v", n, err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_, _ = client.Write([]byte("later"))
	}()
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "later" {
		t.Fatalf("Read after finding nothing buffered: %q, %v", buf[:min(n, 16)], err)
	}

	// The end of the stream, queued behind full records, ends the Read
	// after them.
	if _, err := client.Write(sent[:2*maxTLSRecord]); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(server)
	if err != nil || !bytes.Equal(got, sent[:2*maxTLSRecord]) {
		t.Fatalf("read to the end: %d bytes, %v", len(got), err)
	}
	if n, err := server.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("Read after the end: %d, %v", n, err)
	}
}

// recvPeek returns how many bytes fd holds, up to len(buf), without taking
// them.
func recvPeek(fd uintptr, buf []byte) (int, syscall.Sockaddr, error) {
	return syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
}

// TestTLSStreamCloseDuringWrite: a Write that the peer does not read is
// broken at once by Close (a close_notify does not wait behind it), and a
// large Write the peer reads arrives whole.
func TestTLSStreamCloseDuringWrite(t *testing.T) {
	client, server := tlsStreamPair(t)
	big := make([]byte, 4<<20)
	_, _ = rand.Read(big)
	go func() { _, _ = client.Write(big) }()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a 4 MiB Write read back: %v", err)
	}

	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(make([]byte, 64<<20)) // far more than the socket buffers hold
		wrote <- err
	}()
	time.Sleep(200 * time.Millisecond) // the Write is blocked on the peer
	start := time.Now()
	_ = client.Close()
	select {
	case err := <-wrote:
		if err == nil {
			t.Fatal("a Write broken by Close reported no error")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not break the Write")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close during a Write took %v", d)
	}
}

// TestTLSStreamNoBatchLeft: with every batch buffer out, a large Write
// goes record by record and arrives whole.
func TestTLSStreamNoBatchLeft(t *testing.T) {
	client, server := tlsStreamPair(t)
	var held []*[]byte
	for b := tlsBatches.Borrow(); b != nil; b = tlsBatches.Borrow() {
		held = append(held, b)
	}
	defer func() {
		for _, b := range held {
			tlsBatches.Return(b)
		}
	}()
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	wrote := make(chan error, 1)
	go func() {
		_, err := client.Write(big)
		wrote <- err
	}()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(server, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a 1 MiB Write without batches read back: %v", err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
