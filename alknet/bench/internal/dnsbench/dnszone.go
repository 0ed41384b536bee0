package dnsbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// dnsOrigin is the origin of the zone both DNS servers serve.
const dnsOrigin = "bench.example."

// dnsZoneText is the benchmark zone in RFC 1035 presentation format: a
// small authoritative zone with the record types a node typically serves.
const dnsZoneText = `$ORIGIN bench.example.
$TTL 300
@        IN SOA  ns1 hostmaster 2026010101 7200 3600 1209600 300
@        IN NS   ns1
@        IN A    192.0.2.1
@        IN MX   10 mail
@        IN TXT  "v=spf1 mx -all"
ns1      IN A    192.0.2.53
mail     IN A    192.0.2.25
www      IN A    192.0.2.80
www      IN AAAA 2001:db8::80
api      IN A    192.0.2.81
api      IN A    192.0.2.82
api      IN AAAA 2001:db8::81
cdn      IN CNAME www
_sip._udp IN SRV 10 60 5060 www
_alknet  IN SVCB 1 www alpn=doq,dot port=4433
docs     IN TXT  "a benchmark zone for alknet and CoreDNS"
`

// dnsQueries is the query mix, one "name type" a line as dnsperf reads
// it: answers, a CNAME chased inside the zone, NODATA and NXDOMAIN.
var dnsQueries = []string{
	"www.bench.example A",
	"www.bench.example AAAA",
	"api.bench.example A",
	"bench.example MX",
	"bench.example TXT",
	"cdn.bench.example A",
	"_sip._udp.bench.example SRV",
	"_alknet.bench.example SVCB",
	"docs.bench.example TXT",
	"mail.bench.example AAAA",
	"nope.bench.example A",
	"bench.example SOA",
}

// dnsQuery is one query of the mix, packed once.
type dnsQuery struct {
	name  string
	qtype uint16
	// wire is the packed query with message ID 0 and no EDNS.
	wire []byte
	// rcode is the answer's expected RCODE, taken from the alknet server
	// when the comparison starts and checked on every answer.
	rcode int
}

// parseDNSQueries packs lines of "name type".
func parseDNSQueries(lines []string) ([]dnsQuery, error) {
	qs := make([]dnsQuery, 0, len(lines))
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("bench: dns query %q: want \"name type\"", l)
		}
		t, ok := mdns.StringToType[f[1]]
		if !ok {
			return nil, fmt.Errorf("bench: dns query %q: unknown type", l)
		}
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(f[0]), t)
		m.Id = 0
		m.RecursionDesired = false
		wire, err := m.Pack()
		if err != nil {
			return nil, fmt.Errorf("bench: dns query %q: %w", l, err)
		}
		qs = append(qs, dnsQuery{name: mdns.Fqdn(f[0]), qtype: t, wire: wire})
	}
	return qs, nil
}

// writeDNSFiles writes the zone file and dnsperf's query file into dir and
// returns their paths.
func writeDNSFiles(dir string) (zone, queries string, err error) {
	zone = filepath.Join(dir, "bench.example.zone")
	queries = filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(zone, []byte(dnsZoneText), 0o600); err != nil {
		return "", "", fmt.Errorf("bench: dns zone: %w", err)
	}
	if err := os.WriteFile(queries, []byte(strings.Join(dnsQueries, "\n")+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("bench: dns queries: %w", err)
	}
	return zone, queries, nil
}

// checkSameAnswers asks both servers (classic UDP, EDNS0 off) every query
// and compares RCODE, the AA and TC bits and the answer and authority
// sections; it records the RCODE in each query for the load generators.
func checkSameAnswers(ctx context.Context, qs []dnsQuery, alknet, coredns string) error {
	c := &mdns.Client{Net: "udp", Timeout: dnsTimeout}
	var errs []error
	for i := range qs {
		q := &qs[i]
		m := new(mdns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.RecursionDesired = false
		a, _, err := c.ExchangeContext(ctx, m, alknet)
		if err != nil {
			return fmt.Errorf("bench: dns check, alknet, %s: %w", q.name, err)
		}
		b, _, err := c.ExchangeContext(ctx, m, coredns)
		if err != nil {
			return fmt.Errorf("bench: dns check, coredns, %s: %w", q.name, err)
		}
		if sa, sb := answerText(a), answerText(b); sa != sb {
			errs = append(errs, fmt.Errorf("%s %s: alknet answers\n%s\ncoredns answers\n%s",
				q.name, mdns.TypeToString[q.qtype], sa, sb))
		}
		q.rcode = a.Rcode
	}
	if len(errs) > 0 {
		return fmt.Errorf("bench: dns check: the servers answer differently: %w", errors.Join(errs...))
	}
	return nil
}

// answerText renders what checkSameAnswers compares, each section's
// records sorted.
func answerText(m *mdns.Msg) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rcode %s aa %v tc %v\n", mdns.RcodeToString[m.Rcode], m.Authoritative, m.Truncated)
	for _, sec := range [][]mdns.RR{m.Answer, m.Ns} {
		lines := make([]string, len(sec))
		for i, rr := range sec {
			lines[i] = rr.String()
		}
		slices.Sort(lines)
		b.WriteString(strings.Join(lines, "\n"))
		b.WriteString("\n;\n")
	}
	return b.String()
}
