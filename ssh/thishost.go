package ssh

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// "This host" is one class of destinations for the forwarding rules: every
// address a connect() from the node reaches the node itself at. It is
//   - loopback: 127.0.0.0/8 and ::1;
//   - unspecified: 0.0.0.0/8 and :: (Linux connects 0.0.0.0 and :: to the
//     local host, so "0.0.0.0:9090" reaches a service bound to 127.0.0.1);
//   - every address of the node's own interfaces.
//
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.

// thisHostRanges are the fixed ranges of this host; a rule whose address
// range lies inside one of them names this host (see [Target]).
var thisHostRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::/128"),
}

// inThisHostRange reports whether a lies in a fixed range of this host.
func inThisHostRange(a netip.Addr) bool {
	a = normAddr(a)
	for _, p := range thisHostRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// namesThisHost reports whether an address range lies inside the fixed
// ranges of this host, so that it stands for all of this host.
func namesThisHost(p netip.Prefix) bool {
	for _, r := range thisHostRanges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// hostAddrsTTL is how long the node's interface addresses are cached.
const hostAddrsTTL = 5 * time.Second

// hostAddrs tells whether an address belongs to this host: the fixed
// ranges, or an address of one of its interfaces, read with load at most
// once per hostAddrsTTL (a netlink dump on Linux, well under a millisecond,
// done under the lock). A failed read keeps the previous set. Safe for
// concurrent use; the zero value reads net.InterfaceAddrs.
type hostAddrs struct {
	load func() ([]net.Addr, error) // nil: net.InterfaceAddrs
	now  func() time.Time           // nil: time.Now

	mu  sync.Mutex
	at  time.Time // when set was read
	set map[netip.Addr]struct{}
}

// contains reports whether a is an address of this host.
func (h *hostAddrs) contains(a netip.Addr) bool {
	a = normAddr(a)
	if inThisHostRange(a) {
		return true
	}
	now := time.Now
	if h.now != nil {
		now = h.now
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := now(); h.set == nil || t.Sub(h.at) >= hostAddrsTTL || t.Before(h.at) {
		if set, err := h.read(); err == nil || h.set == nil {
			h.set = set
		}
		h.at = t
	}
	_, ok := h.set[a]
	return ok
}

// read lists the interface addresses, without zones and mapping.
func (h *hostAddrs) read() (map[netip.Addr]struct{}, error) {
	load := net.InterfaceAddrs
	if h.load != nil {
		load = h.load
	}
	list, err := load()
	set := make(map[netip.Addr]struct{}, len(list))
	for _, a := range list {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		}
		if na, ok := netip.AddrFromSlice(ip); ok {
			set[normAddr(na)] = struct{}{}
		}
	}
	return set, err
}

// errNotAddress is a host name ending in a number that is no IPv4 address.
var errNotAddress = errors.New("host ends in a number but is not an IPv4 address")

// parseNumericIPv4 reads the numeric IPv4 forms that inet_aton, and so
// getaddrinfo, curl and browsers, accept besides dotted decimal: one to four
// parts separated by dots, each decimal, octal (a leading 0) or hex (0x),
// the last one filling the remaining bytes ("2130706433", "0x7f000001",
// "0177.0.0.1", "127.1", "0" are all addresses of this host). numeric is
// false when host does not end in a number, so it is a name to resolve; a
// host that ends in a number but is no such address returns errNotAddress
// (no DNS name ends in an all-numeric label). host is normalised (no
// trailing dot).
func parseNumericIPv4(host string) (a netip.Addr, numeric bool, err error) {
	parts := strings.Split(host, ".")
	if !isNumberPart(parts[len(parts)-1]) {
		return netip.Addr{}, false, nil
	}
	if len(parts) > 4 {
		return netip.Addr{}, true, errNotAddress
	}
	var v uint64
	for i, p := range parts {
		n, err := parseNumberPart(p)
		if err != nil {
			return netip.Addr{}, true, errNotAddress
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, true, errNotAddress
			}
			v = v<<8 | n
			continue
		}
		rest := uint(4 - i) // bytes the last part fills
		if n >= 1<<(8*rest) {
			return netip.Addr{}, true, errNotAddress
		}
		v = v<<(8*rest) | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, nil
}

// isNumberPart reports whether a label is a number as parseNumberPart reads
// it: decimal digits, or 0x and hex digits.
func isNumberPart(s string) bool {
	if h, ok := strings.CutPrefix(strings.ToLower(s), "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// parseNumberPart reads one part of a numeric IPv4 address.
func parseNumberPart(s string) (uint64, error) {
	base := 10
	switch l := strings.ToLower(s); {
	case strings.HasPrefix(l, "0x"):
		s, base = l[2:], 16
		if s == "" {
			return 0, nil
		}
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	return strconv.ParseUint(s, base, 32)
}

// dialled is the set of local addresses of the TCP connections the server
// opened for direct-tcpip channels, while they are open; see
// [Server.Forwarded]. Safe for concurrent use; the zero value is empty.
type dialled struct {
	mu  sync.Mutex
	set map[netip.AddrPort]int // a count: two connections may share a local address
}

// add records conn's local address and returns the function that forgets
// it. A connection without a TCP local address is not recorded.
func (d *dialled) add(conn net.Conn) (remove func()) {
	ta, ok := conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return func() {}
	}
	ap := addrPortOf(ta)
	d.mu.Lock()
	if d.set == nil {
		d.set = make(map[netip.AddrPort]int)
	}
	d.set[ap]++
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.set[ap]--; d.set[ap] <= 0 {
			delete(d.set, ap)
		}
	}
}

// has reports whether ap is the local address of a recorded connection.
func (d *dialled) has(ap netip.AddrPort) bool {
	ap = netip.AddrPortFrom(normAddr(ap.Addr()), ap.Port())
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.set[ap] > 0
}

// addrPortOf converts a TCP address, without zone and IPv4 mapping.
func addrPortOf(ta *net.TCPAddr) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ta.IP)
	return netip.AddrPortFrom(normAddr(a), uint16(ta.Port))
}
