package dns_test

import (
	"fmt"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/dns"
)

// Example serves a zone written inline and answers a query directly. On a
// node, the server is a core.Handler for doq, dot and alknet/dns.
func Example() {
	zones, err := dns.NewZones([]dns.ZoneConfig{{
		Origin: "example.org.",
		Records: []string{
			"@   SOA ns1 hostmaster 1 7200 3600 1209600 300",
			"@   NS  ns1",
			"ns1 A   192.0.2.53",
			"www A   192.0.2.1",
		},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv, err := dns.New(dns.Config{Zones: zones})
	if err != nil {
		fmt.Println(err)
		return
	}
	q := new(mdns.Msg)
	q.SetQuestion("www.example.org.", mdns.TypeA)
	resp := srv.Answer(q, 0)
	fmt.Println(srv.ALPNs(), resp.Authoritative, resp.Answer[0])
	// Output: [alknet/dns doq dot] true www.example.org.	3600	IN	A	192.0.2.1
}
