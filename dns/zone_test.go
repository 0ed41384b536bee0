package dns

import (
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
)

// testZones loads testdata/example.org.zone and a config zone for
// signed records at alk.test.
func testZones(t testing.TB) *Zones {
	t.Helper()
	zs, err := NewZones([]ZoneConfig{
		{Origin: "example.org", File: "testdata/example.org.zone"},
		{Origin: "alk.test.", Records: []string{
			"@ SOA ns1 hostmaster 1 7200 3600 1209600 60",
			"@ NS ns1",
			"ns1 A 127.0.0.1",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return zs
}

func testServer(t testing.TB, edit func(*Config)) *Server {
	t.Helper()
	cfg := Config{Zones: testZones(t), SignedOrigins: []string{"alk.test"}}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func query(name string, qtype uint16) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0
	return m
}

func TestAnswer(t *testing.T) {
	s := testServer(t, nil)
	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		rcode     int
		aa        bool
		answer    []string // record types in order
		authority bool     // SOA in authority
	}{
		{"A", "www.example.org.", mdns.TypeA, mdns.RcodeSuccess, true, []string{"A"}, false},
		{"case-insensitive", "WwW.ExAmPlE.oRg.", mdns.TypeAAAA, mdns.RcodeSuccess, true, []string{"AAAA"}, false},
		{"TXT", "www.example.org.", mdns.TypeTXT, mdns.RcodeSuccess, true, []string{"TXT"}, false},
		{"MX", "example.org.", mdns.TypeMX, mdns.RcodeSuccess, true, []string{"MX"}, false},
		{"CAA", "example.org.", mdns.TypeCAA, mdns.RcodeSuccess, true, []string{"CAA"}, false},
		{"SRV", "_sip._tcp.example.org.", mdns.TypeSRV, mdns.RcodeSuccess, true, []string{"SRV"}, false},
		{"SVCB", "svc.example.org.", mdns.TypeSVCB, mdns.RcodeSuccess, true, []string{"SVCB"}, false},
		{"HTTPS", "example.org.", mdns.TypeHTTPS, mdns.RcodeSuccess, true, []string{"HTTPS"}, false},
		{"SOA", "example.org.", mdns.TypeSOA, mdns.RcodeSuccess, true, []string{"SOA"}, false},
		{"NODATA", "www.example.org.", mdns.TypeMX, mdns.RcodeSuccess, true, nil, true},
		{"NXDOMAIN", "nope.example.org.", mdns.TypeA, mdns.RcodeNameError, true, nil, true},
		{"empty non-terminal", "a.b.example.org.", mdns.TypeA, mdns.RcodeSuccess, true, nil, true},
		{"CNAME chased", "alias.example.org.", mdns.TypeA, mdns.RcodeSuccess, true, []string{"CNAME", "A"}, false},
		{"CNAME asked", "alias.example.org.", mdns.TypeCNAME, mdns.RcodeSuccess, true, []string{"CNAME"}, false},
		{"CNAME out of zone", "ext.example.org.", mdns.TypeA, mdns.RcodeSuccess, true, []string{"CNAME"}, false},
		{"CNAME to NODATA", "alias.example.org.", mdns.TypeMX, mdns.RcodeSuccess, true, []string{"CNAME"}, true},
		{"CNAME loop", "loop1.example.org.", mdns.TypeA, mdns.RcodeSuccess, true, []string{"CNAME", "CNAME"}, false},
		{"ANY minimal", "www.example.org.", mdns.TypeANY, mdns.RcodeSuccess, true, []string{"A"}, false},
		{"outside zones", "example.com.", mdns.TypeA, mdns.RcodeRefused, false, nil, false},
		{"signed: no packet", "_alknet.yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy.alk.test.", mdns.TypeSVCB, mdns.RcodeNameError, true, nil, true},
		{"signed origin own data", "ns1.alk.test.", mdns.TypeA, mdns.RcodeSuccess, true, []string{"A"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.Answer(query(tc.qname, tc.qtype), 0)
			var got []string
			for _, rr := range resp.Answer {
				got = append(got, mdns.TypeToString[rr.Header().Rrtype])
			}
			if resp.Rcode != tc.rcode || resp.Authoritative != tc.aa || strings.Join(got, ",") != strings.Join(tc.answer, ",") {
				t.Errorf("%s %s: rcode %s aa %v answer %v; want %s %v %v\n%v", tc.qname, mdns.TypeToString[tc.qtype],
					mdns.RcodeToString[resp.Rcode], resp.Authoritative, got, mdns.RcodeToString[tc.rcode], tc.aa, tc.answer, resp)
			}
			hasSOA := len(resp.Ns) == 1 && resp.Ns[0].Header().Rrtype == mdns.TypeSOA
			if hasSOA != tc.authority {
				t.Errorf("SOA in authority: %v, want %v\n%v", hasSOA, tc.authority, resp)
			}
			if hasSOA && resp.Ns[0].Header().Ttl > resp.Ns[0].(*mdns.SOA).Minttl {
				t.Errorf("negative SOA TTL %d above its minimum %d", resp.Ns[0].Header().Ttl, resp.Ns[0].(*mdns.SOA).Minttl)
			}
		})
	}
}

func TestAnswerEDNSAndErrors(t *testing.T) {
	s := testServer(t, nil)
	t.Run("truncates over UDP", func(t *testing.T) {
		resp := s.Answer(query("big.example.org.", mdns.TypeTXT), DefaultMaxUDPBytes)
		if !resp.Truncated || len(resp.Answer) == 8 {
			t.Errorf("TC %v with %d records, want truncation", resp.Truncated, len(resp.Answer))
		}
	})
	t.Run("EDNS size lifts the limit", func(t *testing.T) {
		q := query("big.example.org.", mdns.TypeTXT)
		q.SetEdns0(4096, false)
		resp := s.Answer(q, 4096)
		if resp.Truncated || len(resp.Answer) != 8 || resp.IsEdns0() == nil {
			t.Errorf("TC %v, %d records, OPT %v; want the whole answer with OPT", resp.Truncated, len(resp.Answer), resp.IsEdns0())
		}
	})
	t.Run("unknown EDNS option", func(t *testing.T) {
		q := query("www.example.org.", mdns.TypeA)
		q.SetEdns0(1232, true)
		q.IsEdns0().Option = append(q.IsEdns0().Option, &mdns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2, 3}})
		b, _ := q.Pack()
		var back mdns.Msg
		if err := back.Unpack(b); err != nil {
			t.Fatal(err)
		}
		if resp := s.Answer(&back, 0); resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 {
			t.Errorf("got %v", resp)
		}
	})
	t.Run("EDNS version 1", func(t *testing.T) {
		q := query("www.example.org.", mdns.TypeA)
		q.SetEdns0(1232, false)
		q.IsEdns0().SetVersion(1)
		if resp := s.Answer(q, 0); resp.Rcode != mdns.RcodeBadVers {
			t.Errorf("rcode %s, want BADVERS", mdns.RcodeToString[resp.Rcode])
		}
	})
	t.Run("UPDATE not implemented", func(t *testing.T) {
		q := query("www.example.org.", mdns.TypeA)
		q.Opcode = mdns.OpcodeUpdate
		if resp := s.Answer(q, 0); resp.Rcode != mdns.RcodeNotImplemented {
			t.Errorf("rcode %s", mdns.RcodeToString[resp.Rcode])
		}
	})
	t.Run("two questions", func(t *testing.T) {
		q := query("www.example.org.", mdns.TypeA)
		q.Question = append(q.Question, q.Question[0])
		if resp := s.Answer(q, 0); resp.Rcode != mdns.RcodeFormatError {
			t.Errorf("rcode %s", mdns.RcodeToString[resp.Rcode])
		}
	})
	t.Run("CHAOS refused", func(t *testing.T) {
		q := query("version.bind.", mdns.TypeTXT)
		q.Question[0].Qclass = mdns.ClassCHAOS
		if resp := s.Answer(q, 0); resp.Rcode != mdns.RcodeRefused {
			t.Errorf("rcode %s", mdns.RcodeToString[resp.Rcode])
		}
	})
	t.Run("response dropped", func(t *testing.T) {
		q := query("www.example.org.", mdns.TypeA)
		q.Response = true
		if resp := s.Answer(q, 0); resp != nil {
			t.Errorf("answered a response: %v", resp)
		}
	})
}

func TestZoneErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  ZoneConfig
		want string
	}{
		{"bad record names file and line", ZoneConfig{Origin: "bad.example", File: "testdata/bad.zone"}, "testdata/bad.zone: dns: bad A A: \"not-an-address\" at line: 4"},
		{"missing file", ZoneConfig{Origin: "x.example", File: "testdata/missing.zone"}, "no such file"},
		{"no SOA", ZoneConfig{Origin: "x.example", Records: []string{"www A 192.0.2.1"}}, "has no SOA"},
		{"outside", ZoneConfig{Origin: "x.example", Records: []string{"@ SOA ns h 1 2 3 4 5", "www.other. A 192.0.2.1"}}, "outside zone"},
		{"CNAME beside data", ZoneConfig{Origin: "x.example", Records: []string{"@ SOA ns h 1 2 3 4 5", "a A 192.0.2.1", "a CNAME b"}}, "CNAME at a.x.example. beside"},
		{"no origin", ZoneConfig{Records: []string{"@ SOA ns h 1 2 3 4 5"}}, "origin is required"},
		{"both", ZoneConfig{Origin: "x.example", File: "f", Records: []string{"x"}}, "not both"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewZones([]ZoneConfig{tc.cfg})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestReloadKeepsOldZones(t *testing.T) {
	s := testServer(t, nil)
	if _, err := NewZones([]ZoneConfig{{Origin: "bad.example", File: "testdata/bad.zone"}}); err == nil {
		t.Fatal("bad zone loaded")
	}
	// The failed load changed nothing; a good one replaces the set at once.
	if resp := s.Answer(query("www.example.org.", mdns.TypeA), 0); len(resp.Answer) != 1 {
		t.Fatalf("old zones lost: %v", resp)
	}
	zs, err := NewZones([]ZoneConfig{{Origin: "new.example", Records: []string{"@ SOA ns h 1 2 3 4 5", "www A 192.0.2.7"}}})
	if err != nil {
		t.Fatal(err)
	}
	s.SetZones(zs)
	if resp := s.Answer(query("www.example.org.", mdns.TypeA), 0); resp.Rcode != mdns.RcodeRefused {
		t.Errorf("old zone still served: %v", resp)
	}
	if resp := s.Answer(query("www.new.example.", mdns.TypeA), 0); len(resp.Answer) != 1 {
		t.Errorf("new zone not served: %v", resp)
	}
}
