package nat

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/netns"
)

// The waits of the topology tests: a packet that can arrive does so in
// well under a millisecond here, so one that has not after quiet has
// been dropped.
const (
	quiet       = 300 * time.Millisecond
	dialTimeout = time.Second
)

// listenUDP opens a UDP socket in ns on addr (port 0: any) and closes it
// when t ends.
func listenUDP(t *testing.T, ns *netns.NS, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listenTCP opens a TCP listener in ns on addr and closes it when t ends.
func listenTCP(t *testing.T, ns *netns.NS, addr netip.AddrPort) *net.TCPListener {
	t.Helper()
	var l *net.TCPListener
	if err := ns.Do(func() (err error) {
		l, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dialTCP dials addr from ns within dialTimeout.
func dialTCP(ns *netns.NS, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp4", addr.String(), dialTimeout)
		return err
	})
	return c, err
}

// acceptPeer accepts one connection on l within dialTimeout and returns
// the address it came from.
func acceptPeer(l *net.TCPListener) (netip.AddrPort, error) {
	if err := l.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
		return netip.AddrPort{}, err
	}
	c, err := l.AcceptTCP()
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer c.Close()
	return c.RemoteAddr().(*net.TCPAddr).AddrPort(), nil
}

// udpPort is c's local port.
func udpPort(c *net.UDPConn) uint16 { return c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

// send writes msg from c to to.
func send(t *testing.T, c *net.UDPConn, to netip.AddrPort, msg string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
}

// receive reads one datagram on c within wait: its text and sender, or
// ok false if none came.
func receive(t *testing.T, c *net.UDPConn, wait time.Duration) (msg string, from netip.AddrPort, ok bool) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "", netip.AddrPort{}, false
	} else if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n]), from, true
}

// TestNATTopology: each home reaches the public namespace over TCP and
// UDP, and what the public side sees is the NAT's public address, never
// the home's.
func TestNATTopology(t *testing.T) {
	NeedNAT(t)
	top := StartTestTopology(t, Cone, Symmetric)
	pub := netip.AddrPortFrom(PublicAddr, 0)
	for _, s := range top.Sites {
		t.Run(s.Kind.String(), func(t *testing.T) {
			l := listenTCP(t, top.Public, pub)
			c, err := dialTCP(s.Home, l.Addr().(*net.TCPAddr).AddrPort())
			if err != nil {
				t.Fatalf("home %v cannot reach the public side: %v", s.Addr, err)
			}
			defer c.Close()
			from, err := acceptPeer(l)
			if err != nil {
				t.Fatal(err)
			}
			if from.Addr() != s.Outer {
				t.Errorf("TCP: the public side sees %v, want the NAT's %v", from, s.Outer)
			}

			u := listenUDP(t, top.Public, pub)
			h := listenUDP(t, s.Home, netip.AddrPortFrom(s.Addr, 0))
			send(t, h, u.LocalAddr().(*net.UDPAddr).AddrPort(), "hello")
			msg, from, ok := receive(t, u, dialTimeout)
			if !ok || msg != "hello" {
				t.Fatalf("UDP from home: got %q, %v", msg, ok)
			}
			if from.Addr() != s.Outer {
				t.Errorf("UDP: the public side sees %v, want the NAT's %v", from, s.Outer)
			}
			// The answer goes back through the mapping.
			send(t, u, from, "answer")
			if msg, _, ok := receive(t, h, dialTimeout); !ok || msg != "answer" {
				t.Errorf("the public side's answer did not reach home: %q, %v", msg, ok)
			}
		})
	}
}

// TestNATMapping: the cone NAT keeps a home socket's port for every
// destination; the symmetric one gives each destination a port of its
// own.
func TestNATMapping(t *testing.T) {
	NeedNAT(t)
	top := StartTestTopology(t, Cone, Symmetric)
	const destinations = 3
	for _, s := range top.Sites {
		t.Run(s.Kind.String(), func(t *testing.T) {
			h := listenUDP(t, s.Home, netip.AddrPortFrom(s.Addr, 0))
			seen := map[uint16]bool{}
			for i := range destinations {
				u := listenUDP(t, top.Public, netip.AddrPortFrom(PublicAddr, 0))
				send(t, h, u.LocalAddr().(*net.UDPAddr).AddrPort(), "probe")
				_, from, ok := receive(t, u, dialTimeout)
				if !ok {
					t.Fatalf("destination %d got nothing", i)
				}
				if from.Addr() != s.Outer {
					t.Errorf("destination %d sees %v, want the NAT's %v", i, from, s.Outer)
				}
				seen[from.Port()] = true
			}
			switch s.Kind {
			case Cone:
				if len(seen) != 1 || !seen[udpPort(h)] {
					t.Errorf("cone NAT: %d destinations saw ports %v, want all the home's %d", destinations, keys(seen), udpPort(h))
				}
			case Symmetric:
				// fully-random draws each port: 3 draws that all collide
				// happen once in about 10^9 runs.
				if len(seen) < 2 {
					t.Errorf("symmetric NAT: %d destinations saw ports %v, want different ports", destinations, keys(seen))
				}
			}
		})
	}
}

func keys(m map[uint16]bool) []uint16 {
	var out []uint16
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestNATNoInbound: the public side cannot open a connection into a home,
// neither to its private address (no route, and with a route the NAT
// drops it) nor to the NAT's public address; a UDP datagram reaches the
// home only from where the home sent to. The control opens a port on the
// NAT and sees the same dial succeed, so the failures are the NAT's doing.
func TestNATNoInbound(t *testing.T) {
	NeedNAT(t)
	top := StartTestTopology(t, Cone, Symmetric)
	for _, s := range top.Sites {
		t.Run(s.Kind.String(), func(t *testing.T) {
			l := listenTCP(t, s.Home, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
			port := uint16(l.Addr().(*net.TCPAddr).Port)
			home := netip.AddrPortFrom(s.Addr, port)

			if c, err := dialTCP(top.Public, home); err == nil {
				c.Close()
				t.Fatalf("public side reached home %v with no route to it", home)
			}
			// An attacker next to the NAT routes the private network to it.
			if out, err := top.Public.Command(t.Context(), "ip", "route", "add", s.Prefix.String(), "via", s.Outer.String()).CombinedOutput(); err != nil {
				t.Fatalf("ip route add: %v: %s", err, out)
			}
			t.Cleanup(func() { top.Public.Command(t.Context(), "ip", "route", "del", s.Prefix.String()).Run() })
			if c, err := dialTCP(top.Public, home); err == nil {
				c.Close()
				t.Fatalf("public side reached home %v through the NAT", home)
			}
			if c, err := dialTCP(top.Public, netip.AddrPortFrom(s.Outer, port)); err == nil {
				c.Close()
				t.Fatalf("public side reached the NAT's %v:%d", s.Outer, port)
			}

			// UDP: nothing gets in unasked; an answer from where the home
			// sent to does, from elsewhere it does not.
			h := listenUDP(t, s.Home, netip.AddrPortFrom(s.Addr, 0))
			a := listenUDP(t, top.Public, netip.AddrPortFrom(PublicAddr, 0))
			b := listenUDP(t, top.Public, netip.AddrPortFrom(PublicAddr, 0))
			send(t, a, netip.AddrPortFrom(s.Outer, udpPort(h)), "unasked")
			if msg, _, ok := receive(t, h, quiet); ok {
				t.Fatalf("home got an unasked datagram %q", msg)
			}
			send(t, h, a.LocalAddr().(*net.UDPAddr).AddrPort(), "out")
			_, mapped, ok := receive(t, a, dialTimeout)
			if !ok {
				t.Fatal("the public side got nothing from home")
			}
			send(t, b, mapped, "from elsewhere")
			send(t, a, mapped, "answer")
			if msg, _, ok := receive(t, h, dialTimeout); !ok || msg != "answer" {
				t.Errorf("home got %q, %v; want only the answer", msg, ok)
			}
			if msg, _, ok := receive(t, h, quiet); ok {
				t.Errorf("home got %q from a port it never sent to", msg)
			}

			// Control: the operator forwards the port; the same dials to
			// the private address (routed) and to the NAT's now work.
			if err := s.Forward(t.Context(), port); err != nil {
				t.Fatal(err)
			}
			for _, to := range []netip.AddrPort{home, netip.AddrPortFrom(s.Outer, port)} {
				c, err := dialTCP(top.Public, to)
				if err != nil {
					t.Fatalf("control: with the port forwarded the dial to %v still fails: %v", to, err)
				}
				c.Close()
			}
		})
	}
}

// TestNATHolePunch: two homes that learned each other's public address
// and port (from a head, say) send to each other at the same time. Behind
// cone NATs the probes get through both ways, even when one side's probe
// reaches the other's NAT before that NAT has a mapping (it is dropped,
// and does not spoil the mapping that follows); with a symmetric NAT on
// one side the ports learned are not the ones used, and nothing gets
// through.
func TestNATHolePunch(t *testing.T) {
	NeedNAT(t)
	for _, tc := range []struct {
		kinds [2]Kind
		punch bool
	}{
		{[2]Kind{Cone, Cone}, true},
		{[2]Kind{Cone, Symmetric}, false},
		{[2]Kind{Symmetric, Symmetric}, false},
	} {
		t.Run(fmt.Sprintf("%v-%v", tc.kinds[0], tc.kinds[1]), func(t *testing.T) {
			top := StartTestTopology(t, tc.kinds[0], tc.kinds[1])
			rendezvous := listenUDP(t, top.Public, netip.AddrPortFrom(PublicAddr, 0))
			var socks [2]*net.UDPConn
			var public [2]netip.AddrPort
			for i, s := range top.Sites {
				socks[i] = listenUDP(t, s.Home, netip.AddrPortFrom(s.Addr, 0))
				// Each home tells the rendezvous point; what it sees is
				// the address the peer will aim at.
				send(t, socks[i], rendezvous.LocalAddr().(*net.UDPAddr).AddrPort(), "hello")
				_, from, ok := receive(t, rendezvous, dialTimeout)
				if !ok {
					t.Fatalf("home %d did not reach the rendezvous point", i+1)
				}
				public[i] = from
			}
			// Home 2's probe comes first and finds no mapping at NAT 1;
			// then home 1's opens NAT 1 and gets through NAT 2, which
			// home 2's probe opened; then home 2's gets through.
			send(t, socks[1], public[0], "probe 2a")
			_, _, early := receive(t, socks[0], quiet)
			send(t, socks[0], public[1], "probe 1")
			msg1, from1, got1 := receive(t, socks[1], quiet)
			send(t, socks[1], public[0], "probe 2b")
			msg2, from2, got2 := receive(t, socks[0], quiet)
			t.Logf("public %v %v; home 2 got %q from %v; home 1 got %q from %v", public[0], public[1], msg1, from1, msg2, from2)
			if early {
				t.Error("home 2's first probe got in before home 1 sent anything")
			}
			if got := got1 && got2; got != tc.punch {
				t.Fatalf("punched through both ways: %v, want %v", got, tc.punch)
			}
			if tc.punch && (from1 != public[0] || from2 != public[1]) {
				t.Errorf("the probes came from %v and %v, want the addresses the rendezvous saw, %v and %v", from1, from2, public[0], public[1])
			}
		})
	}
}

// TestNATAcrossLink: built around an emulated link, the second home
// reaches the public side across it (its RTT in the TCP handshake, the
// link's address of A as the NAT's), the first home without it; the
// NAT still lets nothing in.
func TestNATAcrossLink(t *testing.T) {
	NeedNAT(t)
	netem.NeedLinkEmulator(t)
	const rtt = 20 * time.Millisecond
	l := netem.StartTestLink(t, netem.LinkProfile{Name: "cheap", RTT: rtt})
	top := StartTestAcross(t, l, Cone, Symmetric)
	if top.Sites[1].Outer != l.Addr(netem.SideA) {
		t.Fatalf("site 1's public address %v, want the link's %v", top.Sites[1].Outer, l.Addr(netem.SideA))
	}
	lis := listenTCP(t, top.Public, netip.AddrPortFrom(PublicAddr, 0))
	for i, s := range top.Sites {
		start := time.Now()
		c, err := dialTCP(s.Home, lis.Addr().(*net.TCPAddr).AddrPort())
		took := time.Since(start)
		if err != nil {
			t.Fatalf("home %d: %v", i+1, err)
		}
		c.Close()
		from, err := acceptPeer(lis)
		if err != nil {
			t.Fatal(err)
		}
		if from.Addr() != s.Outer {
			t.Errorf("home %d: the public side sees %v, want %v", i+1, from, s.Outer)
		}
		if across := i == 1; across != (took >= rtt) {
			t.Errorf("home %d: connected in %v; across the link: %v (RTT %v)", i+1, took, across, rtt)
		}
	}
	h := listenTCP(t, top.Sites[1].Home, netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
	if c, err := dialTCP(top.Public, netip.AddrPortFrom(top.Sites[1].Outer, uint16(h.Addr().(*net.TCPAddr).Port))); err == nil {
		c.Close()
		t.Error("the public side reached the home behind the link's NAT")
	}
}

func TestParseCrossing(t *testing.T) {
	const js = `{"nftables": [{"metainfo": {"version": "1.0.6", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "alknat-pub", "handle": 1}}, ` +
		`{"chain": {"family": "inet", "table": "alknat-pub", "name": "forward", "handle": 1, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}, ` +
		`{"rule": {"family": "inet", "table": "alknat-pub", "chain": "forward", "handle": 3, "expr": [{"counter": {"packets": 3, "bytes": 4567}}]}}, ` +
		`{"rule": {"family": "inet", "table": "alknat-pub", "chain": "input", "handle": 4, "expr": [{"match": {}}, {"counter": {"packets": 1, "bytes": 89}}]}}]}`
	if c, err := parseCrossing([]byte(js)); err != nil || c != (Crossing{Forwarded: 4567, Local: 89}) {
		t.Fatalf("got %+v, %v", c, err)
	}
	for _, bad := range []string{`{"nftables": []}`, `not json`} {
		if _, err := parseCrossing([]byte(bad)); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}
