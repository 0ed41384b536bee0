package core

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/quic-go/quic-go"
)

// Sessions that survive a network change. QUIC names a connection by its
// connection IDs, not by addresses, so a client whose address changes keeps
// its connection if two things hold:
//
//   - The client keeps sending. Its UDP socket is bound to the unspecified
//     address, so the kernel picks the source address per packet: once the
//     new address is up, packets leave from it. While the host has no address
//     or route (between Wi-Fi and cellular, say), a send fails, and quic-go
//     closes a connection whose send fails; [roamingUDP] reports such a send
//     as done instead, so the packet counts as lost and is sent again later.
//     A network that never comes back ends the connection at the idle
//     timeout, as a silent peer does.
//   - The node follows. quic-go validates the new address (PATH_CHALLENGE)
//     and moves the connection to it (RFC 9000 §9); the endpoint logs the
//     move at info ([Endpoint.notePathChanges]).
//
// quic-go's client-side Conn.AddPath / Path.Probe / Path.Switch (a second
// socket, probed before the switch) is not needed for this: it helps a
// client that must leave a socket, which an unspecified-bound one never has
// to.

// roamingUDP is the UDP socket of a client's QUIC connection; it keeps
// quic-go's optimizations (it is still an OOB-capable UDP socket).
type roamingUDP struct {
	*net.UDPConn
	dropped atomic.Uint64 // sends dropped while the network was gone
}

// networkGone reports a send error that means the host has, for now, no
// address or route towards the peer.
func networkGone(err error) bool {
	return errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.ENETDOWN)
}

func (c *roamingUDP) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	n, oobn, err := c.UDPConn.WriteMsgUDP(b, oob, addr)
	if err != nil && networkGone(err) {
		c.dropped.Add(1)
		return len(b), len(oob), nil
	}
	return n, oobn, err
}

func (c *roamingUDP) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.UDPConn.WriteTo(b, addr)
	if err != nil && networkGone(err) {
		c.dropped.Add(1)
		return len(b), nil
	}
	return n, err
}

// dialRoaming dials a QUIC connection over a socket of its own (a
// [roamingUDP]), closed with the connection; early, it returns as soon as
// 0-RTT data can be sent (quic-go's DialEarly).
func dialRoaming(ctx context.Context, hostport string, cfg *tls.Config, qcfg *quic.Config, early bool) (*quic.Conn, error) {
	raddr, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: &roamingUDP{UDPConn: udp}}
	dial := tr.Dial
	if early {
		dial = tr.DialEarly
	}
	qc, err := dial(ctx, raddr, cfg, qcfg)
	if err != nil {
		_ = tr.Close()
		_ = udp.Close()
		return nil, err
	}
	context.AfterFunc(qc.Context(), func() {
		_ = tr.Close()
		_ = udp.Close()
	})
	return qc, nil
}

// notePathChanges logs, at info with the connection's logger, each QUIC
// connection of conns whose client address changed since the last call (a
// client that moved to another network and kept its connection). Only the
// revalidation loop calls it, twice a second.
func (e *Endpoint) notePathChanges(conns []*tracked) {
	for _, t := range conns {
		q, ok := t.conn.(QUICConn)
		if !ok {
			continue
		}
		addr := q.QUIC().RemoteAddr()
		now := addrPort(addr)
		if t.lastAddr.IsValid() && now != t.lastAddr {
			t.conn.Logger().Info("connection moved to a new client address", "new_remote_ip", Peer{RemoteAddr: addr}.RemoteIP())
		}
		t.lastAddr = now
	}
}

// addrPort returns a UDP address as a netip.AddrPort without allocating;
// another kind of address is parsed from its string.
func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
