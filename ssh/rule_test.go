package ssh

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

func TestParseRule(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		in   string
		want Rule
		err  string
	}{
		{"allow *", Rule{Action: Allow, Target: Target{Any: true}}, ""},
		{"deny *:22", Rule{Action: Deny, Target: Target{Any: true, FirstPort: 22, LastPort: 22}}, ""},
		{"allow *:*", Rule{Action: Allow, Target: Target{Any: true}}, ""},
		{"allow 10.0.0.0/8:80-443 principals=ops", Rule{Action: Allow, Target: Target{Prefix: pfx("10.0.0.0/8"), FirstPort: 80, LastPort: 443}, Principals: []string{"ops"}}, ""},
		{"allow\t10.1.2.3/8", Rule{Action: Allow, Target: Target{Prefix: pfx("10.0.0.0/8")}}, ""},
		{"allow 192.0.2.7:443", Rule{Action: Allow, Target: Target{Prefix: pfx("192.0.2.7/32"), FirstPort: 443, LastPort: 443}}, ""},
		{"deny fd00::/8", Rule{Action: Deny, Target: Target{Prefix: pfx("fd00::/8")}}, ""},
		{"deny ::1", Rule{Action: Deny, Target: Target{Prefix: pfx("::1/128")}}, ""},
		{"allow [::1]:22", Rule{Action: Allow, Target: Target{Prefix: pfx("::1/128"), FirstPort: 22, LastPort: 22}}, ""},
		{"allow [fd00::/8]:80-90 principals=a,ssh:x", Rule{Action: Allow, Target: Target{Prefix: pfx("fd00::/8"), FirstPort: 80, LastPort: 90}, Principals: []string{"a", "ssh:x"}}, ""},
		{"allow *.Example.COM.:8000-8999", Rule{Action: Allow, Target: Target{Host: "*.example.com", FirstPort: 8000, LastPort: 8999}}, ""},
		{"allow db-*", Rule{Action: Allow, Target: Target{Host: "db-*"}}, ""},
		{"allow localhost:5432", Rule{Action: Allow, Target: Target{Host: "localhost", FirstPort: 5432, LastPort: 5432}}, ""},
		{"deny self", Rule{Action: Deny, Target: Target{Self: true}}, ""},
		{"allow SELF:5432", Rule{Action: Allow, Target: Target{Self: true, FirstPort: 5432, LastPort: 5432}}, ""},
		{"allow self.example.com", Rule{Action: Allow, Target: Target{Host: "self.example.com"}}, ""},

		{"", Rule{}, "want"},
		{"allow", Rule{}, "want"},
		{"permit *", Rule{}, "action"},
		{"allow *.*.com", Rule{}, "at most one *"},
		{"allow host:0", Rule{}, "bad port"},
		{"allow host:65536", Rule{}, "bad port"},
		{"allow host:080", Rule{}, "bad port"},
		{"allow host:90-80", Rule{}, "backwards"},
		{"allow host:", Rule{}, "bad port"},
		{"allow host:1-", Rule{}, "bad port"},
		{"allow 10.0.0.0/33", Rule{}, "range"},
		{"allow ::ffff:10.0.0.0/104", Rule{}, "IPv4-mapped"},
		{"allow fe80::1%eth0", Rule{}, "zone"},
		{"allow [1.2.3.4]:80", Rule{}, "IPv6"},
		{"allow [::1:80", Rule{}, "missing ]"},
		{"allow [::1]80", Rule{}, "want [address]:port"},
		{"allow ho$t", Rule{}, "only letters"},
		{"allow a..b", Rule{}, "empty label"},
		{"allow * principals=", Rule{}, "invalid principal"},
		{"allow * principals=a,,b", Rule{}, "invalid principal"},
		{"allow * principals=a principals=b", Rule{}, "twice"},
		{"allow * ports=1", Rule{}, "unknown option"},
		{"allow 1:2:3", Rule{}, "bad IPv6"},
		{"allow [self]:22", Rule{}, "brackets"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRule(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseRule(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRule(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseRule(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			again, err := ParseRule(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip of %q via %q = %#v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	rules := func(ss ...string) []Rule {
		var rs []Rule
		for _, s := range ss {
			r, err := ParseRule(s)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, r)
		}
		return rs
	}
	addrs := func(ss ...string) []netip.Addr {
		var as []netip.Addr
		for _, s := range ss {
			as = append(as, netip.MustParseAddr(s))
		}
		return as
	}
	ops := &core.Identity{ID: "alice", Scopes: []string{"team:ops", "ssh:forward"}}
	bob := &core.Identity{ID: "bob", Scopes: []string{"ssh:forward"}}
	tests := []struct {
		name  string
		rules []Rule
		host  string
		addrs []netip.Addr
		port  uint16
		id    *core.Identity
		want  Action
	}{
		{"no rules deny", nil, "127.0.0.1", addrs("127.0.0.1"), 80, ops, Deny},
		{"no addresses deny", rules("allow *"), "x", nil, 80, ops, Deny},
		{"any", rules("allow *"), "x", addrs("192.0.2.1"), 80, ops, Allow},
		{"cidr allow", rules("allow 10.0.0.0/8"), "10.1.1.1", addrs("10.1.1.1"), 1, ops, Allow},
		{"cidr miss", rules("allow 10.0.0.0/8"), "11.1.1.1", addrs("11.1.1.1"), 1, ops, Deny},
		{"mapped address matches v4 range", rules("allow 10.0.0.0/8"), "::ffff:10.0.0.1", addrs("::ffff:10.0.0.1"), 1, ops, Allow},
		{"zoned address matches range", rules("deny fe80::/10", "allow *"), "fe80::1%lo", addrs("fe80::1%lo"), 1, ops, Deny},
		{"name resolving into denied range", rules("deny 127.0.0.0/8", "allow *"), "localhost", addrs("127.0.0.1"), 80, ops, Deny},
		{"one bad address denies all", rules("deny 10.0.0.0/8", "allow *"), "split", addrs("127.0.0.1", "10.9.9.9"), 80, ops, Deny},
		{"name rule before cidr rule wins", rules("allow db.internal", "deny 10.0.0.0/8"), "db.internal", addrs("10.0.0.5"), 5432, ops, Allow},
		{"glob", rules("allow *.example.com"), "a.b.example.com", addrs("192.0.2.1"), 443, ops, Allow},
		{"glob does not match bare domain", rules("allow *.example.com"), "example.com", addrs("192.0.2.1"), 443, ops, Deny},
		{"glob prefix", rules("allow db-*"), "db-7", addrs("192.0.2.1"), 443, ops, Allow},
		{"host rule ignores addresses", rules("allow web"), "other", addrs("192.0.2.1"), 80, ops, Deny},
		{"port range in", rules("allow *:80-443"), "x", addrs("192.0.2.1"), 443, ops, Allow},
		{"port range out", rules("allow *:80-443"), "x", addrs("192.0.2.1"), 444, ops, Deny},
		{"port 0 only matches any port", rules("allow *:1-65535"), "x", addrs("192.0.2.1"), 0, ops, Deny},
		{"principal by id", rules("allow * principals=alice"), "x", addrs("192.0.2.1"), 1, ops, Allow},
		{"principal by scope", rules("allow * principals=team:ops"), "x", addrs("192.0.2.1"), 1, ops, Allow},
		{"principal mismatch", rules("allow * principals=team:ops"), "x", addrs("192.0.2.1"), 1, bob, Deny},
		{"principal nil identity", rules("allow * principals=team:ops"), "x", addrs("192.0.2.1"), 1, nil, Deny},
		{"first match wins deny", rules("deny *:22", "allow *"), "x", addrs("192.0.2.1"), 22, ops, Deny},
		{"first match wins allow", rules("allow *:22", "deny *"), "x", addrs("192.0.2.1"), 22, ops, Allow},
		{"unknown action denies", []Rule{{Action: 7, Target: Target{Any: true}}}, "x", addrs("192.0.2.1"), 1, ops, Deny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.rules, tt.host, tt.addrs, tt.port, tt.id, denyAll, inThisHostRange); got != tt.want {
				t.Fatalf("decide(%v, %q, %v, %d, %v) = %v, want %v", tt.rules, tt.host, tt.addrs, tt.port, tt.id, got, tt.want)
			}
		})
	}
	// The remote-forward default admits loopback only.
	if got := decide(nil, "localhost", addrs("127.0.0.1", "::1"), 0, ops, loopbackOnly, nil); got != Allow {
		t.Errorf("loopback default = %v, want allow", got)
	}
	if got := decide(nil, "", addrs("0.0.0.0", "::"), 0, ops, loopbackOnly, nil); got != Deny {
		t.Errorf("wildcard bind default = %v, want deny", got)
	}
}

func TestPolicyValidate(t *testing.T) {
	bad := Policy{
		Forward:            []Rule{{Action: 9, Target: Target{Any: true}}, {Action: Allow}},
		RemoteForward:      []Rule{{Action: Allow, Target: Target{Host: "a b"}}, {Action: Allow, Target: Target{Self: true}}},
		StreamLocalConnect: []string{"relative/path", "/ok/*"},
		StreamLocalListen:  []string{"/bad/["},
		Env:                []string{"", "A*B", "LC_*", "LANG"},
		CertAuthorities:    []CertAuthority{{Name: "x"}, {Name: "x", Scopes: []string{"bad scope"}}},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad policy")
	}
	for _, want := range []string{
		"forward rule 1", "forward rule 2", "remote-forward rule 1", "remote-forward rule 2 (allow self): self is for forward rules", `streamlocal connect path "relative/path"`,
		`streamlocal listen path "/bad/["`, `env ""`, `env "A*B"`, `certificate authority "x": no key`,
		"duplicate name", "invalid scope",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error lacks %q:\n%v", want, err)
		}
	}
	for _, unwanted := range []string{`"/ok/*"`, `"LC_*"`, `"LANG"`} {
		if strings.Contains(err.Error(), unwanted) {
			t.Errorf("Validate error names the valid %s:\n%v", unwanted, err)
		}
	}
	var nilPolicy *Policy
	if err := nilPolicy.Validate(); err != nil {
		t.Errorf("nil policy: %v", err)
	}
}

func TestEnvAndPathPatterns(t *testing.T) {
	for _, tt := range []struct {
		pats []string
		name string
		want bool
	}{
		{[]string{"LANG"}, "LANG", true},
		{[]string{"LANG"}, "LANGUAGE", false},
		{[]string{"LC_*"}, "LC_ALL", true},
		{[]string{"LC_*"}, "LD_PRELOAD", false},
		{[]string{"*"}, "", false},
		{[]string{"*"}, "A=B", false},
		{nil, "LANG", false},
	} {
		if got := envAllowed(tt.pats, tt.name); got != tt.want {
			t.Errorf("envAllowed(%q, %q) = %v, want %v", tt.pats, tt.name, got, tt.want)
		}
	}
	for _, tt := range []struct {
		pats []string
		path string
		want bool
	}{
		{[]string{"/run/app/*.sock"}, "/run/app/db.sock", true},
		{[]string{"/run/app/*.sock"}, "/run/app/x/db.sock", false},
		{[]string{"/run/app/*.sock"}, "/run/app/../../etc/x.sock", false},
		{[]string{"/run/app/*.sock"}, "run/app/db.sock", false},
		{nil, "/run/app/db.sock", false},
	} {
		if got := pathAllowed(tt.pats, tt.path); got != tt.want {
			t.Errorf("pathAllowed(%q, %q) = %v, want %v", tt.pats, tt.path, got, tt.want)
		}
	}
}

// FuzzParseRule checks that the rule parser never panics and that whatever
// it accepts validates and prints back to text that parses to the same rule.
func FuzzParseRule(f *testing.F) {
	for _, s := range []string{
		"allow *",   // any destination
		"deny *:22", // any host, one port
		"allow 10.0.0.0/8:80-443 principals=ops,dev", // range, port range, principals
		"allow [fd00::/8]:80",                        // bracketed IPv6 range with port
		"deny ::1",                                   // bare IPv6 address
		"allow *.example.com:8000",                   // glob
		"allow localhost",                            // plain name
		"allow 10.1.2.3/8",                           // host bits set: masked
		"allow [::1",                                 // truncated bracket
		"allow host:0",                               // port out of range
		"allow ::ffff:1.2.3.4",                       // mapped address: refused
		"allow fe80::1%eth0",                         // zone: refused
		"allow * principals=a principals=b",          // repeated option
		"deny\t*\t",                                  // tabs
		"allow x:1-",                                 // open range
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRule(s)
		if err != nil {
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("ParseRule(%q) = %#v, which does not validate: %v", s, r, err)
		}
		text := r.String()
		again, err := ParseRule(text)
		if err != nil {
			t.Fatalf("ParseRule(%q) printed as %q, which does not parse: %v", s, text, err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("ParseRule(%q) = %#v, but its text %q parses to %#v", s, r, text, again)
		}
		if again.String() != text {
			t.Fatalf("text not stable: %q then %q", text, again.String())
		}
	})
}

// TestThisHost judges every spelling of this host, from the text a client
// sends to the rules' verdict, as dialTCP does: resolveHost, then decide
// with the node's addresses (here 192.0.2.9 and 2001:db8::9 stand for its
// interfaces).
func TestThisHost(t *testing.T) {
	node := &hostAddrs{load: func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("192.0.2.9"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("2001:db8::9"), Mask: net.CIDRMask(64, 128)},
			&net.IPAddr{IP: net.ParseIP("fe80::9"), Zone: "eth0"},
		}, nil
	}}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		names := map[string][]string{
			"localhost":         {"127.0.0.1", "::1"},
			"zero.example.test": {"0.0.0.0"},
			"node.example.test": {"192.0.2.9"},
			"web.example.test":  {"198.51.100.7"},
		}
		var as []netip.Addr
		for _, s := range names[host] {
			as = append(as, netip.MustParseAddr(s))
		}
		if as == nil {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return as, nil
	}
	// Every host here is this host: it must be denied by each rule set
	// that does not name it.
	self := []string{
		"0", "0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0", "::ffff:127.0.0.1", "127.0.0.1", "127.9.9.9",
		"::1", "2130706433", "0x7f000001", "0X7F000001", "0177.0.0.1", "0x7f.1", "127.1", "127.0.1",
		"0x0", "00", "localhost", "LocalHost.", "zero.example.test", "192.0.2.9", "2001:db8::9",
		"::ffff:192.0.2.9", "fe80::9%eth0", "node.example.test",
	}
	denying := [][]string{
		{"deny 127.0.0.0/8", "deny ::1", "allow *"}, // the finding of issue 14
		{"allow *"},
		{"deny self", "allow *"},
		{"allow *.example.test", "allow *"},
		{"allow 0.0.0.0/0", "allow ::/0"},
		{"allow 192.0.0.0/8", "allow 2001:db8::/32", "allow fe80::/10", "allow *"},
		{"allow self:1-79", "allow self:81-65535"},
		{"deny 0.0.0.0", "allow self"},
	}
	allowing := [][]string{
		{"allow self"},
		{"allow self:80"},
		{"allow 127.0.0.1:80"},
		{"allow 0.0.0.0/8", "deny *"},
		{"allow ::1"},
	}
	ops := &core.Identity{ID: "alice", Scopes: []string{"ssh:forward"}}
	judge := func(t *testing.T, rules []string, host string) Action {
		t.Helper()
		addrs, err := resolveHost(t.Context(), normHost(host), lookup)
		if err != nil {
			t.Fatalf("resolve %q: %v", host, err)
		}
		return decide(mustRules(t, rules...), normHost(host), addrs, 80, ops, denyAll, node.contains)
	}
	for _, host := range self {
		t.Run(host, func(t *testing.T) {
			for _, rs := range denying {
				if got := judge(t, rs, host); got != Deny {
					t.Errorf("%q with %q = %v, want deny", host, rs, got)
				}
			}
			for _, rs := range allowing {
				if got := judge(t, rs, host); got != Allow {
					t.Errorf("%q with %q = %v, want allow", host, rs, got)
				}
			}
		})
	}
	// Elsewhere is judged as before: "allow *" reaches it.
	for _, host := range []string{"198.51.100.7", "web.example.test", "192.0.2.10", "1.0.0.0", "::ffff:198.51.100.7", "0x01000000"} {
		if got := judge(t, []string{"deny 127.0.0.0/8", "deny ::1", "allow *"}, host); got != Allow {
			t.Errorf("%q = %v, want allow", host, got)
		}
		if got := judge(t, []string{"allow self"}, host); got != Deny {
			t.Errorf("%q with allow self = %v, want deny", host, got)
		}
	}
	// Names and exact node addresses that name this host allow it.
	for _, tt := range []struct{ rule, host string }{
		{"allow localhost", "localhost"},
		{"allow node.example.test", "node.example.test"},
		{"allow 192.0.2.9", "192.0.2.9"},
	} {
		if got := judge(t, []string{tt.rule}, tt.host); got != Allow {
			t.Errorf("%q with %q = %v, want allow", tt.host, tt.rule, got)
		}
	}
	// Hosts that end in a number but are no address, and bracketed or
	// malformed text, are refused before any lookup.
	for _, host := range []string{"[::]", "[::1]", "1.2.3.4.5", "256.1.1.1", "127.0.0.0x100", "0x100000000", "4294967296", "1..1", "::ffff:127.1", "a.b.0"} {
		if _, err := resolveHost(t.Context(), normHost(host), lookup); !errors.Is(err, errDenied) {
			t.Errorf("resolve %q: %v, want denied", host, err)
		}
	}
}

func TestParseNumericIPv4(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    string // "" with numeric: errNotAddress
		numeric bool
	}{
		{"0", "0.0.0.0", true},
		{"2130706433", "127.0.0.1", true},
		{"0x7f000001", "127.0.0.1", true},
		{"0177.0.0.1", "127.0.0.1", true},
		{"127.1", "127.0.0.1", true},
		{"127.0.1", "127.0.0.1", true},
		{"10.0x10.020.1", "10.16.16.1", true},
		{"192.168.65535", "192.168.255.255", true},
		{"4294967295", "255.255.255.255", true},
		{"0x", "0.0.0.0", true},
		{"4294967296", "", true},
		{"192.168.65536", "", true},
		{"08", "", true},
		{"1.2.3.4.5", "", true},
		{"example.com", "", false},
		{"1.example", "", false},
		{"0x7f.example", "", false},
		{"db-1", "", false},
	} {
		a, numeric, err := parseNumericIPv4(tt.in)
		switch {
		case numeric != tt.numeric:
			t.Errorf("parseNumericIPv4(%q): numeric %v, want %v", tt.in, numeric, tt.numeric)
		case tt.want == "" && numeric && !errors.Is(err, errNotAddress):
			t.Errorf("parseNumericIPv4(%q) = %v, %v; want errNotAddress", tt.in, a, err)
		case tt.want != "" && (err != nil || a != netip.MustParseAddr(tt.want)):
			t.Errorf("parseNumericIPv4(%q) = %v, %v; want %s", tt.in, a, err, tt.want)
		}
	}
}

// TestHostAddrsCache reads the interface addresses at most once per TTL and
// keeps the last good set when a read fails.
func TestHostAddrsCache(t *testing.T) {
	now := time.Unix(1000, 0)
	reads := 0
	addr := "192.0.2.1"
	var fail error
	h := &hostAddrs{
		now: func() time.Time { return now },
		load: func() ([]net.Addr, error) {
			reads++
			if fail != nil {
				return nil, fail
			}
			return []net.Addr{&net.IPNet{IP: net.ParseIP(addr), Mask: net.CIDRMask(32, 32)}}, nil
		},
	}
	check := func(a string, want bool, wantReads int) {
		t.Helper()
		if got := h.contains(netip.MustParseAddr(a)); got != want || reads != wantReads {
			t.Fatalf("contains(%s) = %v after %d reads, want %v after %d", a, got, reads, want, wantReads)
		}
	}
	check("127.0.0.1", true, 0) // fixed ranges need no read
	check("192.0.2.1", true, 1)
	check("192.0.2.2", false, 1)
	addr = "192.0.2.2"
	now = now.Add(hostAddrsTTL - time.Millisecond)
	check("192.0.2.2", false, 1) // still cached
	now = now.Add(time.Millisecond)
	check("192.0.2.2", true, 2)
	fail = errors.New("netlink busy")
	now = now.Add(hostAddrsTTL)
	check("192.0.2.2", true, 3) // the failed read keeps the last set
}
