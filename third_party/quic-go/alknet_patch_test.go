package quic

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/protocol"
)

// TestClientQueueHoldsMore is alknet's patch 5: a queue holds exactly its
// limit, and a client's connection gets the larger one.
func TestClientQueueHoldsMore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
	}{
		{"server", 256},
		{"client", 1024},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q receivedPacketQueue
			active := &pathReceiver{}
			q.Init(active, tc.limit)
			for i := range tc.limit {
				if !q.Push(receivedPacket{}, active) {
					t.Fatalf("packet %d of %d refused", i+1, tc.limit)
				}
			}
			if q.Push(receivedPacket{}, active) {
				t.Fatalf("packet %d accepted past the limit", tc.limit+1)
			}
		})
	}
}

// TestSetReceiveQueueLimit is alknet's patch 7: a queue's limit can be
// raised (a server's connection to a known peer) and lowered again.
func TestSetReceiveQueueLimit(t *testing.T) {
	var q receivedPacketQueue
	active := &pathReceiver{}
	q.Init(active, 2)
	q.SetLimit(4)
	for i := range 4 {
		if !q.Push(receivedPacket{}, active) {
			t.Fatalf("packet %d of 4 refused after raising the limit", i+1)
		}
	}
	if q.Push(receivedPacket{}, active) {
		t.Fatal("packet 5 accepted past the raised limit")
	}
	q.SetLimit(1)
	q.Pop()
	if q.Push(receivedPacket{}, active) {
		t.Fatal("packet accepted with 3 queued and a limit of 1")
	}
}

// TestServerDiscardsTLS is alknet's patch 6: once its handshake is over, a
// server's connection holds no crypto/tls connection and no drained
// handshake buffers, yet still reports the client's certificate and ALPN,
// and the session ticket it sent still resumes.
func TestServerDiscardsTLS(t *testing.T) {
	serverCert, clientCert := selfSigned(t), selfSigned(t)
	serverTLS := &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{"alknet-test"},
	}
	ln, err := ListenAddr("127.0.0.1:0", serverTLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	clientTLS := &tls.Config{
		Certificates:       []tls.Certificate{clientCert},
		InsecureSkipVerify: true,
		NextProtos:         []string{"alknet-test"},
		ClientSessionCache: tls.NewLRUClientSessionCache(1),
	}

	for i, wantResumed := range []bool{false, true} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cc, err := DialAddr(ctx, ln.Addr().String(), clientTLS, nil)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A stream round trip: the server's handshake is over and its
		// ticket sent by the time the client reads the answer.
		st, err := cc.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		ss, err := sc.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(ss, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := ss.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(st, buf); err != nil {
			t.Fatal(err)
		}
		if got := cc.ConnectionState().TLS.DidResume; got != wantResumed {
			t.Errorf("dial %d: resumed %v, want %v", i, got, wantResumed)
		}
		cc.CloseWithError(0, "")
		select {
		case <-sc.Context().Done(): // the run loop is over: its fields may be read
		case <-ctx.Done():
			t.Fatal("server connection did not close")
		}

		cs := sc.ConnectionState().TLS
		if len(cs.PeerCertificates) != 1 || !bytes.Equal(cs.PeerCertificates[0].Raw, clientCert.Certificate[0]) {
			t.Errorf("dial %d: server reports %d peer certificates, not the client's", i, len(cs.PeerCertificates))
		}
		if cs.NegotiatedProtocol != "alknet-test" {
			t.Errorf("dial %d: server reports ALPN %q", i, cs.NegotiatedProtocol)
		}
		if !reflect.ValueOf(sc.cryptoStreamHandler).Elem().FieldByName("conn").IsNil() {
			t.Errorf("dial %d: the server still holds its crypto/tls connection", i)
		}
		if ev := reflect.ValueOf(sc.cryptoStreamHandler).Elem().FieldByName("events"); ev.Cap() != 0 {
			t.Errorf("dial %d: the server's handshake event queue keeps an array of %d events", i, ev.Cap())
		}
		if reflect.ValueOf(cc.cryptoStreamHandler).Elem().FieldByName("conn").IsNil() {
			t.Errorf("dial %d: the client let go of its crypto/tls connection, which receives tickets", i)
		}
		if sc.initialStream.writeBuf != nil || sc.handshakeStream.writeBuf != nil {
			t.Errorf("dial %d: the server keeps drained handshake send buffers", i)
		}
		if sc.initialStream.queue.queue != nil || sc.handshakeStream.queue.queue != nil {
			t.Errorf("dial %d: the server keeps finished handshake receive queues", i)
		}
	}
}

// recordingConn is a sendConn that records what is written, and fails
// every write once fail is set.
type recordingConn struct {
	sendConn
	mx      sync.Mutex
	written [][]byte
	fail    error
	block   chan struct{} // if set, each write waits for it
	writers []string      // the goroutine that wrote each packet
}

func (c *recordingConn) Write(b []byte, _ uint16, _ protocol.ECN) error {
	if c.block != nil {
		<-c.block
	}
	c.mx.Lock()
	defer c.mx.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.written = append(c.written, bytes.Clone(b))
	c.writers = append(c.writers, goroutineHeader())
	return nil
}

// goroutineHeader returns the first line of the calling goroutine's stack
// trace ("goroutine N [running]:"), which names it.
func goroutineHeader() string {
	buf := make([]byte, 256)
	first, _, _ := strings.Cut(string(buf[:runtime.Stack(buf, false)]), "\n")
	return first
}

func (c *recordingConn) count() int {
	c.mx.Lock()
	defer c.mx.Unlock()
	return len(c.written)
}

// sendQueueWriters counts the goroutines writing a send queue (before
// patch 8, one per connection ran (*sendQueue).Run).
func sendQueueWriters() int {
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	return strings.Count(stacks, "(*sendQueue).write(") + strings.Count(stacks, "(*sendQueue).Run(")
}

func packet(b byte) *packetBuffer {
	p := getPacketBuffer()
	p.Data = append(p.Data[:0], b)
	return p
}

// TestSendQueueWritesOnDemand is alknet's patch 8: the send queue's writer
// runs only while packets are queued, writes them in order, and Close
// waits for the queued ones.
func TestSendQueueWritesOnDemand(t *testing.T) {
	conn := &recordingConn{block: make(chan struct{})}
	q := newSendQueue(conn, func(err error) { t.Errorf("write error %v", err) })
	before := sendQueueWriters()
	for i := range sendQueueCapacity {
		q.Send(packet(byte(i)), 0, protocol.ECNNon)
	}
	// The writer takes the first packet and waits in its write.
	for len(q.(*sendQueue).queue) == sendQueueCapacity {
		time.Sleep(time.Millisecond)
	}
	q.Send(packet(sendQueueCapacity), 0, protocol.ECNNon)
	if !q.WouldBlock() {
		t.Error("a full queue does not say it would block")
	}
	if got := sendQueueWriters() - before; got != 1 {
		t.Errorf("%d writers for a full queue, want 1", got)
	}
	closed := make(chan struct{})
	go func() { q.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned before the queued packets were written")
	case <-time.After(50 * time.Millisecond):
	}
	close(conn.block)
	<-closed
	if conn.count() != sendQueueCapacity+1 {
		t.Fatalf("%d packets written, want %d", conn.count(), sendQueueCapacity+1)
	}
	for i, b := range conn.written {
		if b[0] != byte(i) {
			t.Fatalf("packet %d written as %d", i, b[0])
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for sendQueueWriters() > before {
		if time.Now().After(deadline) {
			t.Fatal("the writer still runs with nothing queued")
		}
		time.Sleep(time.Millisecond)
	}
	q.Send(packet(9), 0, protocol.ECNNon) // after Close: dropped
	if conn.count() != sendQueueCapacity+1 || sendQueueWriters() > before {
		t.Error("a packet sent after Close was written")
	}
}

// TestSendQueueWriteError is alknet's patch 8: a failed write is reported
// once, and nothing is written after it.
func TestSendQueueWriteError(t *testing.T) {
	conn := &recordingConn{fail: errors.New("network down")}
	errs := make(chan error, 4)
	q := newSendQueue(conn, func(err error) { errs <- err })
	q.Send(packet(1), 0, protocol.ECNNon)
	if err := <-errs; err != conn.fail {
		t.Fatalf("reported %v", err)
	}
	conn.mx.Lock()
	conn.fail = nil
	conn.mx.Unlock()
	q.Send(packet(2), 0, protocol.ECNNon)
	q.Close()
	if conn.count() != 0 || len(errs) != 0 {
		t.Errorf("after a failed write: %d written, %d more errors", conn.count(), len(errs))
	}
}

// TestIdleConnectionHasNoWriter is alknet's patch 8 on real connections:
// once the handshake's packets are out, neither side keeps a writer.
func TestIdleConnectionHasNoWriter(t *testing.T) {
	before := sendQueueWriters()
	serverTLS := &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"alknet-test"}}
	ln, err := ListenAddr("127.0.0.1:0", serverTLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"alknet-test"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.CloseWithError(0, "")
	if _, err := ln.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	for sendQueueWriters() > before {
		if ctx.Err() != nil {
			t.Fatalf("%d send queue writers on two idle connections", sendQueueWriters()-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSendQueueWriterLingers is alknet's patch 13: a packet sent while the
// writer lingers after the queue drained is written by the same writer,
// which ends once the queue stayed empty for the linger, or at once when
// the queue closes.
func TestSendQueueWriterLingers(t *testing.T) {
	time.Sleep(2 * writerLinger) // earlier tests' writers end
	before := sendQueueWriters()
	waitWriters := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for sendQueueWriters() > before {
			if time.Now().After(deadline) {
				t.Fatalf("the writer still runs %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	send := func(q sender, conn *recordingConn, b byte) {
		t.Helper()
		n := conn.count()
		q.Send(packet(b), 0, protocol.ECNNon)
		deadline := time.Now().Add(5 * time.Second)
		for conn.count() == n {
			if time.Now().After(deadline) {
				t.Fatalf("packet %d never written", b)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}

	conn := &recordingConn{}
	q := newSendQueue(conn, func(err error) { t.Errorf("write error %v", err) })
	q.(*sendQueue).lingerFor = time.Minute
	send(q, conn, 1)
	send(q, conn, 2)
	if w := conn.writers; w[0] != w[1] {
		t.Errorf("packets written by %q and %q, want one lingering writer", w[0], w[1])
	}
	start := time.Now()
	q.Close()
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close waited %v for a lingering writer", d)
	}
	waitWriters("after Close")

	conn = &recordingConn{}
	q = newSendQueue(conn, func(err error) { t.Errorf("write error %v", err) })
	q.(*sendQueue).lingerFor = time.Millisecond
	send(q, conn, 1)
	waitWriters("long after the queue drained")
	send(q, conn, 2) // a new writer
	waitWriters("long after the second burst")
	q.Close()
}

// TestSendQueueLingerLosesNothing is alknet's patch 13 under races: packets
// sent while a writer's linger ends, with the queue closed right after, are
// all written, in order. (A writer that ended without taking a packet sent
// as its linger expired would leave it queued, and Close would drop it.)
func TestSendQueueLingerLosesNothing(t *testing.T) {
	const packets = 20
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		conn := &recordingConn{}
		q := newSendQueue(conn, func(err error) { t.Errorf("write error %v", err) })
		q.(*sendQueue).lingerFor = time.Duration(i%50) * time.Microsecond
		for b := range packets {
			for q.WouldBlock() {
				select {
				case <-q.Available():
				case <-time.After(5 * time.Second):
					t.Fatal("a full queue never drained")
				}
			}
			q.Send(packet(byte(b)), 0, protocol.ECNNon)
			if b%3 == 0 {
				time.Sleep(time.Duration(i%40) * time.Microsecond)
			}
		}
		q.Close()
		if n := conn.count(); n != packets {
			t.Fatalf("iteration %d: %d of %d packets written before Close returned", i, n, packets)
		}
		for j, w := range conn.written {
			if w[0] != byte(j) {
				t.Fatalf("iteration %d: packet %d written as %d", i, j, w[0])
			}
		}
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(nil, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
