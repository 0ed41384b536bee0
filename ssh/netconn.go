package ssh

import (
	"errors"
	"net"
	"net/netip"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/core"
)

// streamConn adapts a core.Stream to the net.Conn that xssh.NewServerConn
// takes. The remote address is the peer's, as a *net.TCPAddr even on QUIC,
// because x/crypto enforces a certificate's source-address only on TCP
// addresses.
type streamConn struct {
	core.Stream
	remote net.Addr
}

var _ net.Conn = streamConn{}

func newStreamConn(s core.Stream, remote net.Addr) streamConn {
	return streamConn{Stream: s, remote: tcpAddr(remote)}
}

func (c streamConn) LocalAddr() net.Addr  { return alknetAddr{} }
func (c streamConn) RemoteAddr() net.Addr { return c.remote }

// tcpAddr turns the peer's address into a *net.TCPAddr with the same IP and
// port; an unknown address becomes 0.0.0.0:0, which no source-address list
// should name.
func tcpAddr(a net.Addr) *net.TCPAddr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a
	case *net.UDPAddr:
		return &net.TCPAddr{IP: a.IP, Port: a.Port, Zone: a.Zone}
	case nil:
	default:
		if ap, err := netip.ParseAddrPort(a.String()); err == nil {
			return net.TCPAddrFromAddrPort(ap)
		}
	}
	return &net.TCPAddr{IP: net.IPv4zero}
}

// alknetAddr is the local address of an SSH session on an alknet stream.
type alknetAddr struct{}

func (alknetAddr) Network() string { return "alknet" }
func (alknetAddr) String() string  { return ALPN }

// errNoDeadline is returned by the deadline methods of a channel stream.
var errNoDeadline = errors.New("ssh: channels have no deadlines")

// channelStream adapts an SSH channel to core.Stream, for CallChannel.
type channelStream struct {
	xssh.Channel
}

var _ core.Stream = channelStream{}

func (c channelStream) Abort(core.ErrorCode)             { _ = c.Channel.Close() }
func (c channelStream) SetDeadline(time.Time) error      { return errNoDeadline }
func (c channelStream) SetReadDeadline(time.Time) error  { return errNoDeadline }
func (c channelStream) SetWriteDeadline(time.Time) error { return errNoDeadline }
