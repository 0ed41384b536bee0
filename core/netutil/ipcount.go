package netutil

import (
	"net"
	"net/netip"
	"sync"
)

// IPCount counts open connections per source address (see [Source])
// against a cap, as sshd's PerSourceMaxStartups does. Acquire and Release
// are safe for concurrent use. The zero value admits nobody; set Max.
type IPCount struct {
	// Max is how many connections one source may hold at once.
	Max int

	mu sync.Mutex
	n  map[netip.Addr]int
}

// Source returns the source a connection from a counts against: the
// address of a *net.TCPAddr or *net.UDPAddr (an IPv4-mapped IPv6 address
// as IPv4), an IPv6 one cut to its first ipv6PrefixLen bits, since one
// host (or attacker) usually holds a whole /64; 0 or 128 keep each IPv6
// address on its own. Any other address is the zero netip.Addr, which
// counts as one source.
func Source(a net.Addr, ipv6PrefixLen int) netip.Addr {
	ip := AddrIP(a)
	if ip.Is6() && ipv6PrefixLen > 0 {
		if p, err := ip.Prefix(ipv6PrefixLen); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// Acquire counts a connection from source, or reports false when source
// holds Max already.
func (c *IPCount) Acquire(source netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[source] >= c.Max {
		return false
	}
	if c.n == nil {
		c.n = make(map[netip.Addr]int)
	}
	c.n[source]++
	return true
}

// Release uncounts a connection Acquire counted.
func (c *IPCount) Release(source netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[source]--; c.n[source] <= 0 {
		delete(c.n, source)
	}
}

// Sources returns how many sources hold a connection.
func (c *IPCount) Sources() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}

// AddrIP returns the IP address of a *net.TCPAddr or *net.UDPAddr, an
// IPv4-mapped IPv6 address as IPv4; the zero netip.Addr for any other.
func AddrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}
