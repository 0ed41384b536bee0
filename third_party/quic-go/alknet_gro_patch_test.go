//go:build linux

package quic

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/protocol"
)

// groPair returns a receiving oobConn and a sending one on loopback.
func groPair(t *testing.T) (rcv, snd *oobConn, sndAddr net.Addr) {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	r, s := listen(), listen()
	rcv, err := newConn(r, true)
	if err != nil {
		t.Fatal(err)
	}
	snd, err = newConn(s, true)
	if err != nil {
		t.Fatal(err)
	}
	if !rcv.groCapable {
		t.Skip("the kernel cannot turn on UDP_GRO")
	}
	if !snd.capabilities().GSO {
		t.Skip("the kernel cannot send with GSO")
	}
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	return rcv, snd, s.LocalAddr()
}

// datagram returns the i-th test datagram: n bytes of i.
func datagram(i, n int) []byte { return bytes.Repeat([]byte{byte(i)}, n) }

// readDatagram reads a packet and checks it is want, from from, in a
// packet buffer of its own.
func readDatagram(t *testing.T, c *oobConn, from net.Addr, want []byte) {
	t.Helper()
	p, err := c.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.data, want) {
		t.Fatalf("read %d bytes starting %x, want %d bytes of %x", len(p.data), p.data[:min(4, len(p.data))], len(want), want[0])
	}
	if p.remoteAddr.String() != from.String() {
		t.Fatalf("from %v, want %v", p.remoteAddr, from)
	}
	if p.buffer == nil || cap(p.buffer.Data) != protocol.MaxPacketBufferSize || &p.data[0] != &p.buffer.Data[:1][0] {
		t.Fatal("the packet is not in a packet buffer of its own")
	}
	p.buffer.Release()
}

// TestReceiveOffload checks alknet's patch 14: a full batch turns UDP_GRO
// on, and a run of datagrams sent with GSO then arrives as one message
// that ReadPacket splits into the same datagrams, in order, each copied
// into a packet buffer; a datagram larger than any QUIC packet is dropped
// and the next one still read.
func TestReceiveOffload(t *testing.T) {
	rcv, snd, from := groPair(t)
	to := rcv.LocalAddr()

	// A full batch of single datagrams: read into packet buffers, as
	// without the patch, and it turns the offload on.
	for i := range batchSize {
		if _, err := snd.WritePacket(datagram(i, 100+i), to, nil, 0, protocol.ECNUnsupported); err != nil {
			t.Fatal(err)
		}
	}
	for i := range batchSize {
		readDatagram(t, rcv, from, datagram(i, 100+i))
	}
	if !rcv.gro {
		t.Fatal("a full batch did not turn UDP_GRO on")
	}

	// Five datagrams of 1,200 bytes and one of 700, sent with GSO.
	const segSize = 1200
	var run []byte
	for i := range 5 {
		run = append(run, datagram(10+i, segSize)...)
	}
	run = append(run, datagram(15, 700)...)
	if _, err := snd.WritePacket(run, to, nil, segSize, protocol.ECNUnsupported); err != nil {
		t.Fatal(err)
	}
	readDatagram(t, rcv, from, datagram(10, segSize))
	if len(rcv.coalesced) != 4*segSize+700 {
		t.Fatalf("%d bytes left of the run after its first datagram: it did not arrive as one message", len(rcv.coalesced))
	}
	for i := 1; i < 5; i++ {
		readDatagram(t, rcv, from, datagram(10+i, segSize))
	}
	readDatagram(t, rcv, from, datagram(15, 700))

	// Too large for a QUIC packet: dropped, as a read into a packet buffer
	// would have truncated it; the datagram after it is read.
	if _, err := snd.WritePacket(datagram(20, protocol.MaxPacketBufferSize+1), to, nil, 0, protocol.ECNUnsupported); err != nil {
		t.Fatal(err)
	}
	if _, err := snd.WritePacket(datagram(21, 50), to, nil, 0, protocol.ECNUnsupported); err != nil {
		t.Fatal(err)
	}
	readDatagram(t, rcv, from, datagram(21, 50))
}

// TestReceiveOffloadOff checks that QUIC_GO_DISABLE_GRO keeps UDP_GRO off
// through full batches.
func TestReceiveOffloadOff(t *testing.T) {
	t.Setenv("QUIC_GO_DISABLE_GRO", "true")
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	oc, err := newConn(c, true)
	if err != nil {
		t.Fatal(err)
	}
	if oc.groCapable {
		t.Fatal("QUIC_GO_DISABLE_GRO=true left UDP_GRO possible")
	}
}
