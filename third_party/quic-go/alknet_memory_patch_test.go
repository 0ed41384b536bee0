package quic

import (
	"context"
	"crypto/tls"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/ackhandler"
	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
	"github.com/quic-go/quic-go/internal/wire"
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

// fakeFrameStream is a streamFrameGetter with n frames of data to send and
// one lost frame to retransmit.
type fakeFrameStream struct {
	id   protocol.StreamID
	n    int
	lost bool
}

func (s *fakeFrameStream) priority() (int8, bool, uint32) { return 3, true, 0 }

func (s *fakeFrameStream) popStreamFrame(protocol.ByteCount, protocol.Version) (ackhandler.StreamFrame, *wire.StreamDataBlockedFrame, bool) {
	s.n--
	return ackhandler.StreamFrame{Frame: &wire.StreamFrame{StreamID: s.id, Data: []byte("data"), DataLenPresent: true}}, nil, s.n > 0
}

func (s *fakeFrameStream) popRetransmissionFrame(protocol.ByteCount, protocol.Version) (ackhandler.StreamFrame, bool) {
	s.lost = false
	return ackhandler.StreamFrame{Frame: &wire.StreamFrame{StreamID: s.id, Data: []byte("lost"), DataLenPresent: true}}, false
}

// TestFramerQueuesOnFirstStream is alknet's patch 11: the framer's
// scheduling queues are made when a stream first has data, not with the
// connection; a framer without them sends no stream data and reports none,
// and a rejected 0-RTT lets go of them.
func TestFramerQueuesOnFirstStream(t *testing.T) {
	f := newFramer(newConnectionFlowController(1<<20, 1<<20, nil, utils.NewRTTStats(), utils.DefaultLogger))
	f.connFlowController.UpdateSendWindow(1 << 20)
	if f.framerQueues != nil {
		t.Fatal("a new framer has its scheduling queues")
	}
	if f.HasData() {
		t.Error("a new framer has data")
	}
	_, sfs, l := f.AppendStreamFrames(nil, nil, 1200, protocol.Version1)
	if len(sfs) != 0 || l != 0 || f.framerQueues != nil {
		t.Errorf("a framer without streams appended %d stream frames (%d bytes), queues made: %v", len(sfs), l, f.framerQueues != nil)
	}

	for _, tc := range []struct {
		name       string
		retransmit bool
		want       []string
	}{
		{"new data", false, []string{"data", "data"}},
		{"retransmission first", true, []string{"lost", "data", "data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			str := &fakeFrameStream{id: 4, n: 2, lost: tc.retransmit}
			f.AddActiveStream(str.id, str)
			if tc.retransmit {
				f.AddStreamWithRetransmission(str.id, str)
			}
			if f.framerQueues == nil || !f.HasData() {
				t.Fatalf("a stream with data: queues made %v, has data %v", f.framerQueues != nil, f.HasData())
			}
			var got []string
			for i := 0; i < 10 && f.HasData(); i++ {
				_, sfs, _ := f.AppendStreamFrames(nil, nil, 1200, protocol.Version1)
				for _, sf := range sfs {
					got = append(got, string(sf.Frame.Data))
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("sent %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("sent %q, want %q", got, tc.want)
				}
			}
			if f.HasData() {
				t.Error("data left after the stream sent all of it")
			}
		})
	}
	f.AddActiveStream(8, &fakeFrameStream{id: 8, n: 1})
	f.Handle0RTTRejection()
	if f.framerQueues != nil || f.HasData() {
		t.Errorf("after a 0-RTT rejection: queues kept %v, has data %v", f.framerQueues != nil, f.HasData())
	}

	// On a real connection: none while idle, made by the first stream.
	ln, err := ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"alknet-test"}}, nil)
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
	t.Cleanup(func() { cc.CloseWithError(0, "") })
	sc, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
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
	if _, err := io.ReadFull(ss, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v", buf, err)
	}
	cc.CloseWithError(0, "")
	<-sc.Context().Done()
	<-cc.Context().Done()
	if sc.framer.framerQueues != nil {
		t.Error("the server, which sent on no stream, made scheduling queues")
	}
	if cc.framer.framerQueues == nil {
		t.Error("the client sent on a stream without scheduling queues")
	}
}

// TestFramerForgetsSentControlFrames is alknet's patch 11: a control frame
// taken for a packet leaves no reference in the framer's queue, whose array
// would otherwise keep it (a server's session ticket and token, sent once
// after the handshake) for as long as no later frame overwrites its slot;
// a queue grown by a burst is given back once empty.
func TestFramerForgetsSentControlFrames(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
	}{
		{"after the handshake", 3},
		{"burst", 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFramer(newConnectionFlowController(1<<20, 1<<20, nil, utils.NewRTTStats(), utils.DefaultLogger))
			f.QueueControlFrame(&wire.PathResponseFrame{Data: [8]byte{1}})
			f.QueueControlFrame(&wire.CryptoFrame{Data: make([]byte, 300)})
			f.QueueControlFrame(&wire.NewTokenFrame{Token: make([]byte, 100)})
			for range tc.n - 2 {
				f.QueueControlFrame(&wire.HandshakeDoneFrame{})
			}
			var sent int
			for i := 0; i < 100 && f.HasData(); i++ {
				frames, _ := f.AppendControlFrames(nil, 1200, monotime.Now(), protocol.Version1)
				sent += len(frames)
			}
			if want := tc.n + 1; sent != want {
				t.Fatalf("sent %d control frames, want %d", sent, want)
			}
			for i, fr := range f.controlFrames[:cap(f.controlFrames)] {
				if fr != nil {
					t.Errorf("slot %d of the control frame queue still holds a sent %T", i, fr)
				}
			}
			if c := cap(f.controlFrames); c > maxIdleControlFrames {
				t.Errorf("the empty control frame queue keeps room for %d frames", c)
			}
			for i, fr := range f.pathResponses[:cap(f.pathResponses)] {
				if fr != nil {
					t.Errorf("slot %d of the PATH_RESPONSE queue still holds a sent frame", i)
				}
			}
		})
	}
}
