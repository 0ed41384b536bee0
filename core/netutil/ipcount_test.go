package netutil

import (
	"net"
	"net/netip"
	"testing"
)

func TestSource(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix int
		a      net.Addr
		want   string
	}{
		{"ipv4", 64, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{"ipv4-mapped", 64, &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.7")}, "192.0.2.7"},
		{"ipv6 /64", 64, &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6")}, "2001:db8:1:2::"},
		{"ipv6 each address", 0, &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6")}, "2001:db8:1:2:3:4:5:6"},
		{"ipv6 /128", 128, &net.UDPAddr{IP: net.ParseIP("2001:db8::1")}, "2001:db8::1"},
		{"unix", 64, &net.UnixAddr{Name: "/x", Net: "unix"}, "invalid IP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Source(tc.a, tc.prefix).String(); got != tc.want {
				t.Errorf("Source(%v) = %s, want %s", tc.a, got, tc.want)
			}
		})
	}
}

// TestIPCountCap: each source holds at most Max; releasing frees a slot
// and the last release forgets the source.
func TestIPCountCap(t *testing.T) {
	c := &IPCount{Max: 2}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	steps := []struct {
		acquire bool
		ip      netip.Addr
		want    bool
	}{
		{true, a, true}, {true, a, true}, {true, a, false},
		{true, b, true},
		{false, a, true}, {true, a, true}, {true, a, false},
	}
	for i, s := range steps {
		if !s.acquire {
			c.Release(s.ip)
			continue
		}
		if got := c.Acquire(s.ip); got != s.want {
			t.Fatalf("step %d: Acquire(%s) = %v, want %v", i, s.ip, got, s.want)
		}
	}
	c.Release(a)
	c.Release(a)
	c.Release(b)
	if n := c.Sources(); n != 0 {
		t.Errorf("%d sources left after every release", n)
	}
	if (&IPCount{}).Acquire(a) {
		t.Error("the zero IPCount admitted a connection")
	}
}
