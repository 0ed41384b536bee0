//go:build darwin || linux || freebsd

package quic

import (
	"encoding/binary"
	"errors"
	"log"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/protocol"
	"github.com/quic-go/quic-go/internal/utils"
)

const (
	ecnMask = 0x3
	// oobBufferSize holds the control messages of a received datagram: ECN,
	// packet info (for IPv4 and IPv6 on a dual-stack socket) and UDP_GRO's
	// segment size take 120 bytes.
	oobBufferSize = 192
)

// Contrary to what the naming suggests, the ipv{4,6}.Message is not dependent on the IP version.
// They're both just aliases for x/net/internal/socket.Message.
// This means we can use this struct to read from a socket that receives both IPv4 and IPv6 messages.
var _ ipv4.Message = ipv6.Message{}

type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
}

func isECNDisabledUsingEnv() bool {
	disabled, err := strconv.ParseBool(os.Getenv("QUIC_GO_DISABLE_ECN"))
	return err == nil && disabled
}

type oobConn struct {
	OOBCapablePacketConn
	batchConn batchConn

	readPos uint8
	// Packets received from the kernel, but not yet returned by ReadPacket().
	messages []ipv4.Message
	buffers  [batchSize]*packetBuffer

	// UDP receive offload (UDP_GRO), turned on by the first full batch: a
	// socket that receives that many datagrams at once is receiving in
	// bulk, and the kernel then delivers a flow's run of datagrams as one
	// message, which costs one read instead of one each. Before it, reads
	// go straight into packet buffers. After it, they go into a set of
	// coalescing buffers (a message can be up to 64 KiB), taken from a pool
	// while datagrams keep coming and given back whenever the socket has
	// nothing to read, and each datagram is copied out into a packet buffer
	// of its own.
	rawConn          syscall.RawConn
	groCapable, gro  bool
	groBuffers       *coalescingBuffers // nil while the socket waits
	coalesced        []byte             // what is left of the message being split
	segSize          int                // the size of each datagram in it; the last may be shorter
	coalescedPackets receivedPacket     // what its datagrams share: address, ECN, packet info
	peek             [1]byte

	cap connCapabilities
}

var _ rawConn = &oobConn{}

func newConn(c OOBCapablePacketConn, supportsDF bool) (*oobConn, error) {
	rawConn, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var needsPacketInfo bool
	if udpAddr, ok := c.LocalAddr().(*net.UDPAddr); ok && udpAddr.IP.IsUnspecified() {
		needsPacketInfo = true
	}
	// We don't know if this a IPv4-only, IPv6-only or a IPv4-and-IPv6 connection.
	// Try enabling receiving of ECN and packet info for both IP versions.
	// We expect at least one of those syscalls to succeed.
	var errECNIPv4, errECNIPv6, errPIIPv4, errPIIPv6 error
	if err := rawConn.Control(func(fd uintptr) {
		errECNIPv4 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTOS, 1)
		errECNIPv6 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVTCLASS, 1)

		if needsPacketInfo {
			errPIIPv4 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, ipv4PKTINFO, 1)
			errPIIPv6 = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
		}
	}); err != nil {
		return nil, err
	}
	switch {
	case errECNIPv4 == nil && errECNIPv6 == nil:
		utils.DefaultLogger.Debugf("Activating reading of ECN bits for IPv4 and IPv6.")
	case errECNIPv4 == nil && errECNIPv6 != nil:
		utils.DefaultLogger.Debugf("Activating reading of ECN bits for IPv4.")
	case errECNIPv4 != nil && errECNIPv6 == nil:
		utils.DefaultLogger.Debugf("Activating reading of ECN bits for IPv6.")
	case errECNIPv4 != nil && errECNIPv6 != nil:
		return nil, errors.New("activating ECN failed for both IPv4 and IPv6")
	}
	if needsPacketInfo {
		switch {
		case errPIIPv4 == nil && errPIIPv6 == nil:
			utils.DefaultLogger.Debugf("Activating reading of packet info for IPv4 and IPv6.")
		case errPIIPv4 == nil && errPIIPv6 != nil:
			utils.DefaultLogger.Debugf("Activating reading of packet info bits for IPv4.")
		case errPIIPv4 != nil && errPIIPv6 == nil:
			utils.DefaultLogger.Debugf("Activating reading of packet info bits for IPv6.")
		case errPIIPv4 != nil && errPIIPv6 != nil:
			return nil, errors.New("activating packet info failed for both IPv4 and IPv6")
		}
	}

	// Allows callers to pass in a connection that already satisfies batchConn interface
	// to make use of the optimisation. Otherwise, ipv4.NewPacketConn would unwrap the file descriptor
	// via SyscallConn(), and read it that way, which might not be what the caller wants.
	var bc batchConn
	ownBatchConn := false
	if ibc, ok := c.(batchConn); ok {
		bc = ibc
	} else {
		ownBatchConn = true
		if _, ok := c.(net.Conn); !ok {
			return nil, errors.New("quic: OOBCapablePacketConn must implement net.Conn or ReadBatch")
		}
		bc = ipv4.NewPacketConn(c)
	}

	msgs := make([]ipv4.Message, batchSize)
	for i := range msgs {
		// preallocate the [][]byte
		msgs[i].Buffers = make([][]byte, 1)
	}
	oobConn := &oobConn{
		OOBCapablePacketConn: c,
		batchConn:            bc,
		messages:             msgs,
		readPos:              batchSize,
		rawConn:              rawConn,
		groCapable:           ownBatchConn && isGROSupported(),
		cap: connCapabilities{
			DF:  supportsDF,
			GSO: isGSOEnabled(rawConn),
			ECN: isECNEnabled(),
		},
	}
	for i := range batchSize {
		oobConn.messages[i].OOB = make([]byte, oobBufferSize)
	}
	return oobConn, nil
}

var invalidCmsgOnceV4, invalidCmsgOnceV6 sync.Once

func (c *oobConn) ReadPacket() (receivedPacket, error) {
	for {
		if len(c.coalesced) > 0 {
			if p, ok := c.nextDatagram(); ok {
				return p, nil
			}
			continue
		}
		if len(c.messages) == int(c.readPos) { // all messages read. Read the next batch of messages.
			if err := c.readBatch(); err != nil {
				return receivedPacket{}, err
			}
		}

		msg := c.messages[c.readPos]
		buffer := c.buffers[c.readPos]
		c.readPos++

		p, segSize, err := parseMessage(msg)
		if err != nil {
			return receivedPacket{}, err
		}
		if buffer != nil { // read into a packet buffer: one datagram
			p.data = msg.Buffers[0][:msg.N]
			p.buffer = buffer
			return p, nil
		}
		c.coalesced, c.segSize, c.coalescedPackets = msg.Buffers[0][:msg.N], segSize, p
	}
}

// readBatch reads the next batch of messages. A full batch turns on UDP
// receive offload for the batches after it, when the socket supports it.
func (c *oobConn) readBatch() error {
	c.messages = c.messages[:batchSize]
	if c.gro {
		return c.readCoalesced()
	}
	// replace buffers data buffers up to the packet that has been consumed during the last ReadBatch call
	for i := uint8(0); i < c.readPos; i++ {
		buffer := getPacketBuffer()
		buffer.Data = buffer.Data[:protocol.MaxPacketBufferSize]
		c.buffers[i] = buffer
		c.messages[i].Buffers[0] = c.buffers[i].Data
	}
	c.readPos = 0

	n, err := c.batchConn.ReadBatch(c.messages, 0)
	if n == 0 || err != nil {
		c.messages = c.messages[:0] // nothing to hand out: read again next time
		return err
	}
	c.messages = c.messages[:n]
	if n == batchSize && c.groCapable {
		c.groCapable = false // one attempt
		c.gro = enableGRO(c.rawConn)
	}
	return nil
}

// readCoalesced reads the next batch with UDP_GRO on. It reads into a set
// of coalescing buffers without waiting, and when nothing is queued gives
// the set back to the pool and waits for the socket to become readable,
// so that a socket only holds the set while datagrams keep arriving.
func (c *oobConn) readCoalesced() error {
	c.readPos = 0
	for {
		if c.groBuffers == nil {
			c.groBuffers = coalescingPool.Get().(*coalescingBuffers)
		}
		for i := range c.messages {
			c.buffers[i] = nil // messages without a packet buffer are split
			c.messages[i].Buffers[0] = c.groBuffers[i][:]
		}
		n, err := c.batchConn.ReadBatch(c.messages, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EWOULDBLOCK) {
			coalescingPool.Put(c.groBuffers)
			c.groBuffers = nil
			if err := c.waitReadable(); err != nil {
				c.messages = c.messages[:0]
				return err
			}
			c.messages = c.messages[:batchSize]
			continue
		}
		if n == 0 || err != nil {
			c.messages = c.messages[:0]
			return err
		}
		c.messages = c.messages[:n]
		return nil
	}
}

// waitReadable waits until a datagram is queued on the socket (or its read
// deadline passes, or it is closed), without taking the datagram.
func (c *oobConn) waitReadable() error {
	var serr error
	err := c.rawConn.Read(func(fd uintptr) bool {
		_, _, serr = unix.Recvfrom(int(fd), c.peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return serr != unix.EAGAIN && serr != unix.EWOULDBLOCK
	})
	return err // serr is the next read's: a datagram waits, or the read reports it
}

// coalescingBuffers are the buffers one batch of coalesced messages is
// read into.
type coalescingBuffers [batchSize][maxCoalescedSize]byte

// coalescingPool holds the coalescing buffers of the sockets waiting for
// datagrams, for the next one that reads in bulk.
var coalescingPool = sync.Pool{New: func() any { return new(coalescingBuffers) }}

// nextDatagram cuts the next datagram off the coalesced message and copies
// it into a packet buffer of its own, so that a packet holds its own bytes
// however it arrived. A datagram too large for any QUIC packet is dropped
// (ok false), as a read into a packet buffer would have truncated it.
func (c *oobConn) nextDatagram() (p receivedPacket, ok bool) {
	n := min(c.segSize, len(c.coalesced))
	d := c.coalesced[:n]
	c.coalesced = c.coalesced[n:]
	if n > protocol.MaxPacketBufferSize {
		return receivedPacket{}, false
	}
	p = c.coalescedPackets
	p.buffer = getPacketBuffer()
	p.buffer.Data = append(p.buffer.Data, d...)
	p.data = p.buffer.Data
	return p, true
}

// parseMessage returns a received packet with msg's address, receive
// time, ECN and packet info, but no data, and the size of each datagram in
// msg (msg.N unless it holds several, coalesced by UDP_GRO).
func parseMessage(msg ipv4.Message) (p receivedPacket, segSize int, err error) {
	data := msg.OOB[:msg.NN]
	p = receivedPacket{
		remoteAddr: msg.Addr,
		rcvTime:    monotime.Now(),
	}
	segSize = msg.N
	for len(data) > 0 {
		hdr, body, remainder, err := unix.ParseOneSocketControlMessage(data)
		if err != nil {
			return receivedPacket{}, 0, err
		}
		if hdr.Level == unix.IPPROTO_IP {
			switch hdr.Type {
			case msgTypeIPTOS:
				if len(body) != 1 {
					return receivedPacket{}, 0, errors.New("invalid IPTOS size")
				}
				p.ecn = protocol.ParseECNHeaderBits(body[0] & ecnMask)
			case ipv4PKTINFO:
				ip, ifIndex, ok := parseIPv4PktInfo(body)
				if ok {
					p.info.addr = ip
					p.info.ifIndex = ifIndex
				} else {
					invalidCmsgOnceV4.Do(func() {
						log.Printf("Received invalid IPv4 packet info control message: %+x. "+
							"This should never occur, please open a new issue and include details about the architecture.", body)
					})
				}
			}
		}
		if hdr.Level == unix.IPPROTO_IPV6 {
			switch hdr.Type {
			case unix.IPV6_TCLASS:
				if len(body) != 4 {
					return receivedPacket{}, 0, errors.New("invalid IPV6_TCLASS size")
				}
				bits := uint8(binary.NativeEndian.Uint32(body)) & ecnMask
				p.ecn = protocol.ParseECNHeaderBits(bits)
			case unix.IPV6_PKTINFO:
				// struct in6_pktinfo {
				// 	struct in6_addr ipi6_addr;    /* src/dst IPv6 address */
				// 	unsigned int    ipi6_ifindex; /* send/recv interface index */
				// };
				if len(body) == 20 {
					p.info.addr = netip.AddrFrom16(*(*[16]byte)(body[:16])).Unmap()
					p.info.ifIndex = binary.NativeEndian.Uint32(body[16:])
				} else {
					invalidCmsgOnceV6.Do(func() {
						log.Printf("Received invalid IPv6 packet info control message: %+x. "+
							"This should never occur, please open a new issue and include details about the architecture.", body)
					})
				}
			}
		}
		if hdr.Level == unix.IPPROTO_UDP && hdr.Type == udpGRO && len(body) == 4 {
			if n := int(binary.NativeEndian.Uint32(body)); n > 0 {
				segSize = n
			}
		}
		data = remainder
	}
	return p, segSize, nil
}

// WritePacket writes a new packet.
func (c *oobConn) WritePacket(b []byte, addr net.Addr, packetInfoOOB []byte, gsoSize uint16, ecn protocol.ECN) (int, error) {
	oob := packetInfoOOB
	if gsoSize > 0 {
		if !c.capabilities().GSO {
			panic("GSO disabled")
		}
		oob = appendUDPSegmentSizeMsg(oob, gsoSize)
	}
	if ecn != protocol.ECNUnsupported {
		if !c.capabilities().ECN {
			panic("tried to send an ECN-marked packet although ECN is disabled")
		}
		if remoteUDPAddr, ok := addr.(*net.UDPAddr); ok {
			if remoteUDPAddr.IP.To4() != nil {
				oob = appendIPv4ECNMsg(oob, ecn)
			} else {
				oob = appendIPv6ECNMsg(oob, ecn)
			}
		}
	}
	n, _, err := c.WriteMsgUDP(b, oob, addr.(*net.UDPAddr))
	return n, err
}

func (c *oobConn) capabilities() connCapabilities {
	return c.cap
}

type packetInfo struct {
	addr    netip.Addr
	ifIndex uint32
}

func (info *packetInfo) OOB() []byte {
	if info == nil {
		return nil
	}
	if info.addr.Is4() {
		ip := info.addr.As4()
		// struct in_pktinfo {
		// 	unsigned int   ipi_ifindex;  /* Interface index */
		// 	struct in_addr ipi_spec_dst; /* Local address */
		// 	struct in_addr ipi_addr;     /* Header Destination address */
		// };
		cm := ipv4.ControlMessage{
			Src:     ip[:],
			IfIndex: int(info.ifIndex),
		}
		return cm.Marshal()
	} else if info.addr.Is6() {
		ip := info.addr.As16()
		// struct in6_pktinfo {
		// 	struct in6_addr ipi6_addr;    /* src/dst IPv6 address */
		// 	unsigned int    ipi6_ifindex; /* send/recv interface index */
		// };
		cm := ipv6.ControlMessage{
			Src:     ip[:],
			IfIndex: int(info.ifIndex),
		}
		return cm.Marshal()
	}
	return nil
}

func appendIPv4ECNMsg(b []byte, val protocol.ECN) []byte {
	startLen := len(b)
	b = append(b, make([]byte, unix.CmsgSpace(ecnIPv4DataLen))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[startLen]))
	h.Level = syscall.IPPROTO_IP
	h.Type = unix.IP_TOS
	h.SetLen(unix.CmsgLen(ecnIPv4DataLen))

	// UnixRights uses the private `data` method, but I *think* this achieves the same goal.
	offset := startLen + unix.CmsgSpace(0)
	b[offset] = val.ToHeaderBits()
	return b
}

func appendIPv6ECNMsg(b []byte, val protocol.ECN) []byte {
	startLen := len(b)
	const dataLen = 4
	b = append(b, make([]byte, unix.CmsgSpace(dataLen))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[startLen]))
	h.Level = syscall.IPPROTO_IPV6
	h.Type = unix.IPV6_TCLASS
	h.SetLen(unix.CmsgLen(dataLen))

	// UnixRights uses the private `data` method, but I *think* this achieves the same goal.
	offset := startLen + unix.CmsgSpace(0)
	binary.NativeEndian.PutUint32(b[offset:offset+dataLen], uint32(val.ToHeaderBits()))
	return b
}
