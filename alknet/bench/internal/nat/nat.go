package nat

import (
	"fmt"
	"net/netip"
)

// Kind is how a NAT maps and filters.
type Kind int

const (
	// Cone is endpoint-independent mapping: plain masquerade keeps the
	// home socket's port as the public one for every destination. The
	// filter lets in only what answers a mapping (address- and
	// port-dependent filtering, a port-restricted cone), which is what
	// hole punching needs: both sides send, each opening its own NAT.
	Cone Kind = iota
	// Symmetric maps each destination of a home socket to a new random
	// public port (masquerade fully-random), so the port a peer learns
	// from a third party is not the one that reaches it: hole punching
	// fails and traffic stays on a relay.
	Symmetric
)

func (k Kind) String() string {
	switch k {
	case Cone:
		return "cone"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// NSPrefix starts the name of every namespace the topology creates:
// alknat-PID-SEQ-ROLE.
const NSPrefix = "alknat-"

// maxSites bounds the home sites of a topology (their addresses are
// numbered from 1).
const maxSites = 8

// PublicAddr is the public namespace's address, reachable from every NAT
// (TEST-NET-3 of RFC 5737, never routed outside the namespaces).
var PublicAddr = netip.MustParseAddr("203.0.113.1")

// outerAddr is the public address of site i's NAT (i from 0).
func outerAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{203, 0, 113, byte(11 + i)}) }

// homePrefix is site i's private network; the NAT is .1 in it, the home .2.
func homePrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(1 + i), 0}), 24)
}

func homeAddr(i int) netip.Addr   { return homePrefix(i).Addr().Next().Next() }
func routerAddr(i int) netip.Addr { return homePrefix(i).Addr().Next() }

// The devices: in the public namespace, natN leads to site N's NAT; in a
// NAT namespace, wan to the public one and lan to the home; in a home,
// eth0 to its NAT.
const (
	devWAN  = "wan"
	devLAN  = "lan"
	devHome = "eth0"
)

// nftTable is the table each NAT namespace's ruleset lives in.
const nftTable = "alknat"

// ruleset is the nftables ruleset of a NAT of kind k whose public side is
// device outer, for `nft -f -`.
//
// The input chain matters for hole punching. When a peer's probe reaches
// the NAT before the home has sent anything to that peer, nothing maps it;
// accepted, it would reach the NAT's own stack and conntrack would record
// it (peer → NAT:port), so the home's own probe a moment later could not
// keep its port (its reply tuple would clash with that entry) and
// masquerade would pick another: the simultaneous open fails. Dropping
// unsolicited packets in input keeps such entries unconfirmed, so they
// are never recorded; it is also what a home router does (no ICMP port
// unreachable back).
func ruleset(k Kind, outer string) string {
	masq := "masquerade"
	if k == Symmetric {
		masq = "masquerade fully-random"
	}
	return fmt.Sprintf(`table ip %[1]s {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "%[2]s" %[4]s
	}
	chain forward {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		iifname "%[3]s" oifname "%[2]s" accept
	}
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname "lo" accept
		iifname "%[3]s" accept
	}
}
`, nftTable, outer, devLAN, masq)
}
