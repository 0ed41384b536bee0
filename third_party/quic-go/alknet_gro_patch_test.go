//go:build linux

package quic

import (
	"bytes"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/protocol"
)

// groPair returns a receiving oobConn bound to rcvAddr on network and a
// sending one on 127.0.0.1, and the sender's address. It skips where the
// kernel cannot send with GSO.
func groPair(t *testing.T, network, rcvAddr string) (rcv, snd *oobConn, sndAddr net.Addr) {
	t.Helper()
	listen := func(network, addr string) *net.UDPConn {
		a, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.ListenUDP(network, a)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	r, s := listen(network, rcvAddr), listen("udp4", "127.0.0.1:0")
	rcv, err := newConn(r, true)
	if err != nil {
		t.Fatal(err)
	}
	snd, err = newConn(s, true)
	if err != nil {
		t.Fatal(err)
	}
	if !snd.capabilities().GSO {
		t.Skip("the kernel cannot send with GSO")
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	return rcv, snd, s.LocalAddr()
}

// loopbackTo is where snd reaches rcv.
func loopbackTo(rcv *oobConn) net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: rcv.LocalAddr().(*net.UDPAddr).Port}
}

// datagram returns the i-th test datagram: n bytes of i.
func datagram(i, n int) []byte { return bytes.Repeat([]byte{byte(i)}, n) }

// readDatagram reads a packet and checks it is want, from from, in a
// packet buffer of its own, and returns it.
func readDatagram(t *testing.T, c *oobConn, from net.Addr, want []byte) receivedPacket {
	t.Helper()
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.data, want) {
		t.Fatalf("read %d bytes starting %x, want %d bytes of %x", len(p.data), p.data[:min(4, len(p.data))], len(want), want[0])
	}
	if got := p.remoteAddr.(*net.UDPAddr).AddrPort(); got.Addr().Unmap() != from.(*net.UDPAddr).AddrPort().Addr() || got.Port() != from.(*net.UDPAddr).AddrPort().Port() {
		t.Fatalf("from %v, want %v", p.remoteAddr, from)
	}
	if p.buffer == nil || cap(p.buffer.Data) != protocol.MaxPacketBufferSize || &p.data[0] != &p.buffer.Data[:1][0] {
		t.Fatal("the packet is not in a packet buffer of its own")
	}
	p.buffer.Release()
	return p
}

// sendFullBatch sends a batch's worth of single datagrams and reads them.
func sendFullBatch(t *testing.T, rcv, snd *oobConn, from net.Addr) {
	t.Helper()
	for i := range batchSize {
		if _, err := snd.WritePacket(datagram(i, 100+i), loopbackTo(rcv), nil, 0, protocol.ECNUnsupported); err != nil {
			t.Fatal(err)
		}
	}
	for i := range batchSize {
		readDatagram(t, rcv, from, datagram(i, 100+i))
	}
}

// gsoRun is five datagrams of 1,200 bytes and one of 700, from 10 on.
const runSegSize = 1200

func gsoRun() []byte {
	var run []byte
	for i := range 5 {
		run = append(run, datagram(10+i, runSegSize)...)
	}
	return append(run, datagram(15, 700)...)
}

// runDatagram returns the i-th datagram of gsoRun.
func runDatagram(i int) []byte {
	if i == 5 {
		return datagram(15, 700)
	}
	return datagram(10+i, runSegSize)
}

// TestReceiveOffload checks alknet's patch 14: a full batch turns UDP_GRO
// on; a run of datagrams sent with GSO then arrives as one message that
// ReadPacket splits into the same datagrams, in order, each copied into a
// packet buffer with the message's ECN marking; a datagram larger than any
// QUIC packet is dropped and the next one still read; and a socket with
// nothing to read gives its coalescing buffers back.
func TestReceiveOffload(t *testing.T) {
	rcv, snd, from := groPair(t, "udp4", "127.0.0.1:0")
	if !rcv.groCapable {
		t.Skip("the kernel cannot turn on UDP_GRO")
	}

	sendFullBatch(t, rcv, snd, from)
	if !rcv.gro {
		t.Fatal("a full batch did not turn UDP_GRO on")
	}

	ecn := protocol.ECNUnsupported
	if snd.capabilities().ECN {
		ecn = protocol.ECT0
	}
	if _, err := snd.WritePacket(gsoRun(), loopbackTo(rcv), nil, runSegSize, ecn); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		p := readDatagram(t, rcv, from, runDatagram(i))
		if i == 0 && len(rcv.coalesced) != 4*runSegSize+700 {
			t.Fatalf("%d bytes left of the run after its first datagram: it did not arrive as one message", len(rcv.coalesced))
		}
		if ecn != protocol.ECNUnsupported && p.ecn != ecn {
			t.Fatalf("datagram %d: ECN %v, want %v", i, p.ecn, ecn)
		}
	}

	if _, err := snd.WritePacket(datagram(20, protocol.MaxPacketBufferSize+1), loopbackTo(rcv), nil, 0, protocol.ECNUnsupported); err != nil {
		t.Fatal(err)
	}
	if _, err := snd.WritePacket(datagram(21, 50), loopbackTo(rcv), nil, 0, protocol.ECNUnsupported); err != nil {
		t.Fatal(err)
	}
	readDatagram(t, rcv, from, datagram(21, 50))

	rcv.OOBCapablePacketConn.(*net.UDPConn).SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := rcv.ReadPacket(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a read with nothing sent: %v, want the deadline", err)
	}
	if rcv.groBuffers != nil {
		t.Fatal("a socket waiting for datagrams kept its coalescing buffers")
	}
}

// TestReceiveOffloadPacketInfo checks that each datagram of a coalesced
// message on a dual-stack socket bound to the unspecified address carries
// the packet info (the address it was sent to), which takes the control
// messages to their largest.
func TestReceiveOffloadPacketInfo(t *testing.T) {
	rcv, snd, from := groPair(t, "udp", "[::]:0")
	if !rcv.groCapable {
		t.Skip("the kernel cannot turn on UDP_GRO")
	}
	sendFullBatch(t, rcv, snd, from)
	if _, err := snd.WritePacket(gsoRun(), loopbackTo(rcv), nil, runSegSize, protocol.ECNUnsupported); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		p := readDatagram(t, rcv, from, runDatagram(i))
		if p.info.addr.Unmap().String() != "127.0.0.1" {
			t.Fatalf("datagram %d: packet info %v, want 127.0.0.1", i, p.info.addr)
		}
	}
	if !rcv.gro {
		t.Fatal("UDP_GRO is off")
	}
}

// TestReceiveOffloadOff checks that with QUIC_GO_DISABLE_GRO a full batch
// leaves UDP_GRO off and a GSO run arrives as the kernel cut it, a datagram
// per message.
func TestReceiveOffloadOff(t *testing.T) {
	t.Setenv("QUIC_GO_DISABLE_GRO", "true")
	rcv, snd, from := groPair(t, "udp4", "127.0.0.1:0")
	sendFullBatch(t, rcv, snd, from)
	if rcv.gro || rcv.groCapable {
		t.Fatal("QUIC_GO_DISABLE_GRO=true left UDP_GRO on or possible")
	}
	if _, err := snd.WritePacket(gsoRun(), loopbackTo(rcv), nil, runSegSize, protocol.ECNUnsupported); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		readDatagram(t, rcv, from, runDatagram(i))
		if len(rcv.coalesced) != 0 {
			t.Fatal("a datagram arrived coalesced")
		}
	}
}
