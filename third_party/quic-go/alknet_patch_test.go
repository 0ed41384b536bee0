package quic

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"reflect"
	"testing"
	"time"
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
