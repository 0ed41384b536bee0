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

// TestBindKeepsOneCopyPerGrant: a client that presents the same token on
// every call binds it once, so the connection's list does not grow with
// its calls; a different grant is added.
func TestBindKeepsOneCopyPerGrant(t *testing.T) {
	tok := Identity{ID: "ci", Scopes: []string{"perf"}, token: HashToken("alk_x")}
	tr := &tracked{refs: 1}
	for range 1000 {
		tr.bind(tok)
	}
	other := tok
	other.Scopes = []string{"perf", "admin"}
	tr.bind(other)
	if n := len(tr.ids); n != 2 {
		t.Fatalf("%d identities bound, want 2", n)
	}
}

// TestRevalidateAllocatesNothing: the revalidation loop walks every
// connection twice a second; checking identities that still stand makes
// no garbage however many connections there are.
func TestRevalidateAllocatesNothing(t *testing.T) {
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := NewDirectory(nil, []TokenEntry{{Name: "t", Hash: hash}})
	if err != nil {
		t.Fatal(err)
	}
	ids := NewLiveDirectory(dir, nil)
	id, _ := ids.ByToken(tok)
	e := &Endpoint{cfg: Config{Identities: ids}}
	conns := make([]*tracked, 100)
	for i := range conns {
		conns[i] = &tracked{refs: 1}
		conns[i].bind(id)
	}
	if n := testing.AllocsPerRun(10, func() { e.revalidate(conns) }); n != 0 {
		t.Errorf("revalidating %d connections allocated %.0f times", len(conns), n)
	}
}
