package harness

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDPSocketBuffers reads SO_RCVBUF and SO_SNDBUF of this process's UDP
// socket bound to port. Sockets that quic-go or core.Dialer create are not
// reachable through any API, so it finds the socket's inode in
// /proc/self/net/udp{,6} and its descriptor in /proc/self/fd.
func UDPSocketBuffers(port int) SocketBuffers {
	inode, err := udpInode(port)
	if err != nil {
		return SocketBuffers{Err: err}
	}
	fd, err := socketFD(inode)
	if err != nil {
		return SocketBuffers{Err: err}
	}
	rcv, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err != nil {
		return SocketBuffers{Err: fmt.Errorf("getsockopt SO_RCVBUF: %w", err)}
	}
	snd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		return SocketBuffers{Err: fmt.Errorf("getsockopt SO_SNDBUF: %w", err)}
	}
	return SocketBuffers{Rcv: rcv, Snd: snd}
}

// udpInode returns the inode of the UDP socket bound to port.
func udpInode(port int) (string, error) {
	suffix := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/self/net/udp", "/proc/self/net/udp6"} {
		data, err := os.ReadFile(table)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			if len(f) > 9 && strings.HasSuffix(f[1], suffix) {
				return f[9], nil
			}
		}
	}
	return "", fmt.Errorf("no udp socket on port %d in /proc/self/net", port)
}

// socketFD returns this process's descriptor of the socket with inode.
func socketFD(inode string) (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	want := "socket:[" + inode + "]"
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && link == want {
			return strconv.Atoi(e.Name())
		}
	}
	return 0, fmt.Errorf("no descriptor for socket inode %s", inode)
}

// OffloadProbe is what the kernel said about UDP's segmentation offload
// (GSO, for sends) and receive offload (GRO) on loopback sockets.
type OffloadProbe struct {
	// Sockopt: getsockopt(IPPROTO_UDP, UDP_SEGMENT) succeeded, which is the
	// test quic-go makes before it uses GSO.
	Sockopt bool
	// Send: one sendmsg with a UDP_SEGMENT control message arrived as
	// separate datagrams of the segment size.
	Send bool
	// DisabledByEnv: QUIC_GO_DISABLE_GSO is set to a true value, which
	// makes quic-go skip GSO whatever the kernel supports.
	DisabledByEnv bool
	// Coalesced: the same send to a socket with UDP_GRO on arrived as one
	// message, as alknet's quic-go (patch 14) reads a socket that receives
	// in bulk.
	Coalesced bool
	// GRODisabledByEnv: QUIC_GO_DISABLE_GRO is set to a true value, which
	// keeps UDP_GRO off in alknet's quic-go.
	GRODisabledByEnv bool
	// Err says why Send or Coalesced is false, if it is.
	Err error
}

// ProbeOffloads tests UDP_SEGMENT on 127.0.0.1: the socket option and a
// real segmented send of three 1000-byte segments, then the same send to
// the receiver with UDP_GRO on.
func ProbeOffloads() OffloadProbe {
	var p OffloadProbe
	p.DisabledByEnv, _ = strconv.ParseBool(os.Getenv("QUIC_GO_DISABLE_GSO"))
	p.GRODisabledByEnv, _ = strconv.ParseBool(os.Getenv("QUIC_GO_DISABLE_GRO"))
	recv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		p.Err = err
		return p
	}
	defer recv.Close()
	send, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		p.Err = err
		return p
	}
	defer send.Close()
	raw, err := send.SyscallConn()
	if err != nil {
		p.Err = err
		return p
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		_, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	}); err != nil {
		p.Err = err
		return p
	}
	p.Sockopt = serr == nil

	const segment, segments = 1000, 3
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], segment)
	if _, _, err := send.WriteMsgUDP(make([]byte, segment*segments), oob, recv.LocalAddr().(*net.UDPAddr)); err != nil {
		p.Err = fmt.Errorf("segmented send: %w", err)
		return p
	}
	_ = recv.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 64<<10)
	for i := range segments {
		n, err := recv.Read(buf)
		if err != nil {
			p.Err = fmt.Errorf("segment %d: %w", i+1, err)
			return p
		}
		if n != segment {
			p.Err = errors.New("kernel delivered the send unsegmented")
			return p
		}
	}
	p.Send = true

	rraw, err := recv.SyscallConn()
	if err != nil {
		p.Err = err
		return p
	}
	if err := rraw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
	}); err != nil || serr != nil {
		p.Err = fmt.Errorf("UDP_GRO: %w", errors.Join(err, serr))
		return p
	}
	if _, _, err := send.WriteMsgUDP(make([]byte, segment*segments), oob, recv.LocalAddr().(*net.UDPAddr)); err != nil {
		p.Err = fmt.Errorf("segmented send to UDP_GRO: %w", err)
		return p
	}
	n, err := recv.Read(buf)
	if err != nil {
		p.Err = fmt.Errorf("read with UDP_GRO: %w", err)
		return p
	}
	p.Coalesced = n == segment*segments
	if !p.Coalesced {
		p.Err = fmt.Errorf("with UDP_GRO the send arrived as %d bytes, not %d", n, segment*segments)
	}
	return p
}
