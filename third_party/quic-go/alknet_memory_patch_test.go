package quic

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/monotime"
)

// TestReceiveQueueShrinksAfterBurst is alknet's patch 11: the received
// packet queue starts with room for one packet, grows under a burst as far
// as its limit, keeps that storage while bursts go on, and gives it back
// when it is drained a second after the last burst. The side queue is given
// back whenever it is drained. Packets leave in the order they came.
func TestReceiveQueueShrinksAfterBurst(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		burst int
	}{
		{"server", 256, 256},
		{"client", 1024, 1000},
		{"small burst", 256, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q receivedPacketQueue
			active, other := &pathReceiver{}, &pathReceiver{id: 1}
			q.Init(active, tc.limit)
			if c := q.main.Cap(); c != 1 {
				t.Fatalf("a new queue has room for %d packets, want 1", c)
			}
			t0 := monotime.Now()
			at := func(d time.Duration) receivedPacket {
				return receivedPacket{rcvTime: t0.Add(d), data: []byte{byte(d / time.Millisecond)}}
			}
			pop := func(want receivedPacket) {
				t.Helper()
				p, _, ok := q.Pop()
				if !ok || p.rcvTime != want.rcvTime {
					t.Fatalf("popped %v (ok %v), want the packet received at %v", p.rcvTime, ok, want.rcvTime)
				}
			}
			for range tc.burst {
				if !q.Push(at(0), active) {
					t.Fatal("burst refused")
				}
			}
			grown := q.main.Cap()
			if grown < tc.burst {
				t.Fatalf("%d packets queued in room for %d", tc.burst, grown)
			}
			for range tc.burst {
				pop(at(0))
			}
			// Drained, but within a second of the burst: kept for the next.
			q.Push(at(900*time.Millisecond), active)
			pop(at(900 * time.Millisecond))
			if c := q.main.Cap(); c != grown {
				t.Fatalf("drained %v after the burst: room for %d packets, want %d kept", 900*time.Millisecond, c, grown)
			}
			// A second after the burst, the next drain gives it back.
			q.Push(at(1100*time.Millisecond), active)
			q.Push(at(1100*time.Millisecond+1), other)
			pop(at(1100*time.Millisecond + 1)) // the side queue first
			if c := q.side.Cap(); c != 0 {
				t.Errorf("a drained side queue keeps room for %d packets", c)
			}
			pop(at(1100 * time.Millisecond))
			if c := q.main.Cap(); c != 1 {
				t.Errorf("drained a second after a burst of %d: room for %d packets, want 1", tc.burst, c)
			}
			if _, _, ok := q.Pop(); ok {
				t.Error("a packet left after draining")
			}
			// The queue still holds its limit after shrinking.
			for i := range tc.limit {
				if !q.Push(at(2*time.Second), active) {
					t.Fatalf("packet %d of %d refused after the queue shrank", i+1, tc.limit)
				}
			}
			if q.Push(at(2*time.Second), active) {
				t.Error("a packet over the limit queued")
			}
		})
	}
}

// TestDropPeerCertificates is alknet's patch 11: once the application has
// read the peer's certificates, DropPeerCertificates lets the connection
// forget them; the rest of the connection state stays.
func TestDropPeerCertificates(t *testing.T) {
	serverCert, clientCert := selfSigned(t), selfSigned(t)
	ln, err := ListenAddr("127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{"alknet-test"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := DialAddr(ctx, ln.Addr().String(), &tls.Config{
		Certificates:       []tls.Certificate{clientCert},
		InsecureSkipVerify: true,
		NextProtos:         []string{"alknet-test"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.CloseWithError(0, "") })
	sc, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		conn *Conn
	}{
		{"server", sc},
		{"client", cc},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := len(tc.conn.ConnectionState().TLS.PeerCertificates); n != 1 {
				t.Fatalf("%d peer certificates before the drop, want 1", n)
			}
			tc.conn.DropPeerCertificates()
			cs := tc.conn.ConnectionState().TLS
			if len(cs.PeerCertificates) != 0 || len(cs.VerifiedChains) != 0 {
				t.Errorf("%d peer certificates, %d chains after the drop", len(cs.PeerCertificates), len(cs.VerifiedChains))
			}
			if cs.NegotiatedProtocol != "alknet-test" || !cs.HandshakeComplete {
				t.Errorf("after the drop: ALPN %q, handshake complete %v", cs.NegotiatedProtocol, cs.HandshakeComplete)
			}
		})
	}
	// The server's handshake state holds no certificate either.
	st := sc.cryptoStreamHandler.ConnectionState()
	if len(st.PeerCertificates) != 0 {
		t.Errorf("the server's crypto setup keeps %d peer certificates", len(st.PeerCertificates))
	}
}

// TestDatagramQueueOnlyWhenUsed is alknet's patch 11: a connection has a
// datagram queue only if it receives DATAGRAM frames or its peer allows
// sending them, and datagrams still flow wherever the peer allows them.
func TestDatagramQueueOnlyWhenUsed(t *testing.T) {
	for _, tc := range []struct {
		name           string
		server, client bool // EnableDatagrams
	}{
		{"neither", false, false},
		{"both", true, true},
		{"client only", false, true},
		{"server only", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"alknet-test"}},
				&Config{EnableDatagrams: tc.server})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cc, err := DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"alknet-test"}},
				&Config{EnableDatagrams: tc.client})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cc.CloseWithError(0, "") })
			sc, err := ln.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			<-sc.HandshakeComplete()
			<-cc.HandshakeComplete()
			for _, side := range []struct {
				name           string
				from, to       *Conn
				local, allowed bool // from's EnableDatagrams, to's
			}{
				{"server to client", sc, cc, tc.server, tc.client},
				{"client to server", cc, sc, tc.client, tc.server},
			} {
				if has, want := side.from.datagramQueue != nil, side.local || side.allowed; has != want {
					t.Errorf("%s: datagram queue %v, want %v", side.name, has, want)
				}
				err := side.from.SendDatagram([]byte(side.name))
				if !side.allowed {
					if err == nil {
						t.Errorf("%s: sent a datagram the peer does not allow", side.name)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", side.name, err)
				}
				got, err := side.to.ReceiveDatagram(ctx)
				if err != nil || string(got) != side.name {
					t.Errorf("%s: received %q, %v", side.name, got, err)
				}
			}
		})
	}
}
