package core

import (
	"net"
	"net/netip"
	"testing"
)

// TestSourceGroupsIPv6Prefix: per-IP accounting counts an IPv6 /64 (by
// default) as one source, so one host's addresses cannot take every slot.
func TestSourceGroupsIPv6Prefix(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix int
		a, b   string
		same   bool
	}{
		{"two addresses of one /64", 64, "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"neighbouring /64s", 64, "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"per address with /128", 128, "2001:db8:1:2::1", "2001:db8:1:2::2", false},
		{"IPv4 by address", 64, "192.0.2.1", "192.0.2.2", false},
		{"IPv4-mapped IPv6 is IPv4", 64, "::ffff:192.0.2.1", "192.0.2.1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &Endpoint{cfg: Config{Limits: Limits{IPv6PrefixLen: tc.prefix}.withDefaults()}}
			sa := e.source(&net.UDPAddr{IP: net.ParseIP(tc.a)})
			sb := e.source(&net.TCPAddr{IP: net.ParseIP(tc.b)})
			if (sa == sb) != tc.same {
				t.Errorf("source(%s)=%v source(%s)=%v, same=%v", tc.a, sa, tc.b, sb, tc.same)
			}
			if sa == (netip.Addr{}) {
				t.Error("no source")
			}
		})
	}
}
