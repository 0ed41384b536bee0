package nat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"

	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/netns"
)

// topologySeq numbers this process's topologies, so that namespace names
// are unique per run and per topology.
var topologySeq atomic.Int64

// A Topology is a public namespace and home sites behind NATs. Close
// removes it all.
type Topology struct {
	// Public is the public namespace, at [PublicAddr].
	Public *netns.NS
	// Sites are the homes behind NATs, in the order of Start's kinds.
	Sites []*Site
	// base starts the names of the topology's namespaces.
	base string
	// link, if set, is the emulated link the topology is built around: its
	// namespaces are the public one and the last site's NAT, and stay the
	// link's.
	link *netem.Link
}

// A Site is a home namespace behind its NAT namespace.
type Site struct {
	// Home is the home namespace, at Addr, routed through NAT.
	Home *netns.NS
	// NAT is the NAT namespace.
	NAT *netns.NS
	// Kind is how NAT maps and filters.
	Kind Kind
	// Addr is the home's private address.
	Addr netip.Addr
	// Prefix is the home's private network.
	Prefix netip.Prefix
	// Outer is the NAT's public address: what the public side sees of the
	// home.
	Outer netip.Addr
	// pubDev is the public namespace's device towards the NAT, outerDev
	// the NAT's towards the public namespace.
	pubDev, outerDev string
	// borrowedNAT: the NAT namespace is a link's, not the topology's.
	borrowedNAT bool
}

// Start builds a topology with one home site behind a NAT of each of
// kinds (1 to 8 sites): site i (from 0) is 192.168.(i+1).2 behind a NAT
// whose public address is 203.0.113.(11+i), and the public namespace is
// 203.0.113.1. It needs Linux, root (CAP_SYS_ADMIN and CAP_NET_ADMIN), the
// ip command and nft. Namespaces left by an earlier process that died
// without closing its topology are removed first. ctx bounds only the
// set-up.
func Start(ctx context.Context, kinds ...Kind) (_ *Topology, err error) {
	if len(kinds) == 0 || len(kinds) > maxSites {
		return nil, fmt.Errorf("nat: %d sites, want 1 to %d", len(kinds), maxSites)
	}
	for _, k := range kinds {
		if k != Cone && k != Symmetric {
			return nil, fmt.Errorf("nat: unknown kind %v", k)
		}
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("nat: %w", err)
		}
	}
	netns.RemoveStale(ctx, NSPrefix)
	base := fmt.Sprintf("%s%d-%d-", NSPrefix, os.Getpid(), topologySeq.Add(1))
	t := &Topology{base: base}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Close())
		}
	}()
	if t.Public, err = netns.Add(ctx, base+"pub"); err != nil {
		return nil, fmt.Errorf("nat: %w", err)
	}
	if err := forwarding(t.Public); err != nil {
		return nil, err
	}
	if err := t.countPublic(ctx); err != nil {
		return nil, err
	}
	for i, k := range kinds {
		if err := t.addSite(ctx, i, k); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// addSite adds site i of kind k, behind a NAT namespace of its own
// linked to the public one by a veth pair.
func (t *Topology) addSite(ctx context.Context, i int, k Kind) (err error) {
	s := &Site{Kind: k, Addr: homeAddr(i), Prefix: homePrefix(i), Outer: outerAddr(i),
		pubDev: fmt.Sprintf("nat%d", i+1), outerDev: devWAN}
	t.Sites = append(t.Sites, s)
	if s.NAT, err = netns.Add(ctx, fmt.Sprintf("%snat%d", t.base, i+1)); err != nil {
		return fmt.Errorf("nat: %w", err)
	}
	if s.Home, err = netns.Add(ctx, fmt.Sprintf("%shome%d", t.base, i+1)); err != nil {
		return fmt.Errorf("nat: %w", err)
	}
	if err := t.Public.IP(ctx, fmt.Sprintf(
		"link add %[1]s type veth peer name %[2]s netns %[3]s\n"+
			"addr add %[4]s/32 peer %[5]s/32 dev %[1]s\n"+
			"link set dev %[1]s up\n",
		s.pubDev, s.outerDev, s.NAT.Name(), PublicAddr, s.Outer)); err != nil {
		return fmt.Errorf("nat: %w", err)
	}
	if err := s.NAT.IP(ctx, fmt.Sprintf(
		"addr add %[2]s/32 peer %[3]s/32 dev %[1]s\n"+
			"link set dev %[1]s up\n"+
			"route add default via %[3]s dev %[1]s\n",
		s.outerDev, s.Outer, PublicAddr)); err != nil {
		return fmt.Errorf("nat: %w", err)
	}
	return t.wire(ctx, s, i)
}

// wire links site s (number i), whose NAT reaches the public namespace
// already, to its home and sets up the NAT.
func (t *Topology) wire(ctx context.Context, s *Site, i int) error {
	if err := s.NAT.IP(ctx, fmt.Sprintf(
		"link add %[1]s type veth peer name %[2]s netns %[3]s\n"+
			"addr add %[4]s/%[5]d dev %[1]s\n"+
			"link set dev %[1]s up\n",
		devLAN, devHome, s.Home.Name(), routerAddr(i), s.Prefix.Bits())); err != nil {
		return fmt.Errorf("nat: %w", err)
	}
	if err := s.Home.IP(ctx, fmt.Sprintf(
		"addr add %[2]s/%[3]d dev %[1]s\n"+
			"link set dev %[1]s up\n"+
			"route add default via %[4]s dev %[1]s\n",
		devHome, s.Addr, s.Prefix.Bits(), routerAddr(i))); err != nil {
		return fmt.Errorf("nat: %w", err)
	}
	if err := forwarding(s.NAT); err != nil {
		return err
	}
	cmd := s.NAT.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset(s.Kind, s.outerDev))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nat: nft in %s: %w: %s", s.NAT.Name(), err, bytes.TrimSpace(out))
	}
	return nil
}

// forwarding turns IPv4 forwarding on in ns.
func forwarding(ns *netns.NS) error {
	if err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0)
	}); err != nil {
		return fmt.Errorf("nat: forwarding in %s: %w", ns.Name(), err)
	}
	return nil
}

// Close removes the namespaces, homes first (not a link's: close the link
// after the topology). Processes still running in them are not killed:
// stop them first. It is safe to call more than once.
func (t *Topology) Close() error {
	var errs []error
	for _, s := range t.Sites {
		if s.Home != nil {
			errs = append(errs, s.Home.Close())
		}
		if s.NAT != nil && !s.borrowedNAT {
			errs = append(errs, s.NAT.Close())
		}
	}
	if t.Public != nil && t.link == nil {
		errs = append(errs, t.Public.Close())
	}
	return errors.Join(errs...)
}

// Forward opens port (TCP and UDP) of the NAT's public address to the
// same port of the home, as an operator's port forward does: a direct path
// to a node behind this NAT, to compare with the relay.
func (s *Site) Forward(ctx context.Context, port uint16) error {
	var script strings.Builder
	for _, proto := range []string{"tcp", "udp"} {
		fmt.Fprintf(&script, "add rule ip %[1]s prerouting iifname %[2]q %[3]s dport %[4]d dnat to %[5]s\n"+
			"insert rule ip %[1]s forward iifname %[2]q oifname %[6]q ip daddr %[5]s %[3]s dport %[4]d accept\n",
			nftTable, s.outerDev, proto, port, s.Addr, devLAN)
	}
	cmd := s.NAT.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nat: port forward in %s: %w: %s", s.NAT.Name(), err, bytes.TrimSpace(out))
	}
	return nil
}

// StartAcross builds a topology around the emulated link l: the public
// namespace is l's side B, site 0 (of kind worker) sits behind a NAT
// linked to it by a veth pair, as in [Start], and site 1 (of kind client)
// behind a NAT that is l's side A, whose public address is l's address
// of A. What crosses between site 1 and the rest crosses the emulated
// path: a client far from a head and a worker that are near each other.
// Close the topology before the link.
func StartAcross(ctx context.Context, l *netem.Link, worker, client Kind) (_ *Topology, err error) {
	for _, k := range []Kind{worker, client} {
		if k != Cone && k != Symmetric {
			return nil, fmt.Errorf("nat: unknown kind %v", k)
		}
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, fmt.Errorf("nat: %w", err)
	}
	netns.RemoveStale(ctx, NSPrefix)
	t := &Topology{base: fmt.Sprintf("%s%d-%d-", NSPrefix, os.Getpid(), topologySeq.Add(1)), link: l, Public: l.NS(netem.SideB)}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Close())
		}
	}()
	if err := forwarding(t.Public); err != nil {
		return nil, err
	}
	if err := t.countPublic(ctx); err != nil {
		return nil, err
	}
	if err := t.addSite(ctx, 0, worker); err != nil {
		return nil, err
	}
	s := &Site{Kind: client, Addr: homeAddr(1), Prefix: homePrefix(1), Outer: l.Addr(netem.SideA),
		NAT: l.NS(netem.SideA), outerDev: l.Device(), borrowedNAT: true}
	t.Sites = append(t.Sites, s)
	if s.Home, err = netns.Add(ctx, t.base+"home2"); err != nil {
		return nil, fmt.Errorf("nat: %w", err)
	}
	// The link routes only B's prefix from A; the public addresses are
	// B's too.
	if err := s.NAT.IP(ctx, fmt.Sprintf("route add %s dev %s src %s\n",
		netip.PrefixFrom(PublicAddr, 24).Masked(), s.outerDev, s.Outer)); err != nil {
		return nil, fmt.Errorf("nat: %w", err)
	}
	if err := t.wire(ctx, s, 1); err != nil {
		return nil, err
	}
	return t, nil
}

// pubTable is the public namespace's nftables table: counters only.
const pubTable = "alknat-pub"

// countPublic installs the public namespace's counters (see [Crossing]).
func (t *Topology) countPublic(ctx context.Context) error {
	cmd := t.Public.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`table inet %s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		counter
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname != "lo" counter
	}
}
`, pubTable))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nat: nft in %s: %w: %s", t.Public.Name(), err, bytes.TrimSpace(out))
	}
	return nil
}

// Crossing is what the public namespace has carried so far, in bytes of
// IP packets (headers included): Forwarded went through it from one NAT
// to another (a direct path between homes), Local ended at its own
// sockets (a head's, so a relayed path's).
type Crossing struct {
	Forwarded, Local int64
}

// Crossing reads the public namespace's counters.
func (t *Topology) Crossing(ctx context.Context) (Crossing, error) {
	out, err := t.Public.Command(ctx, "nft", "-j", "list", "table", "inet", pubTable).Output()
	if err != nil {
		return Crossing{}, fmt.Errorf("nat: nft list in %s: %w", t.Public.Name(), err)
	}
	return parseCrossing(out)
}

// parseCrossing reads the counters of `nft -j list table` of pubTable.
func parseCrossing(js []byte) (Crossing, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Chain string `json:"chain"`
				Expr  []struct {
					Counter *struct {
						Bytes int64 `json:"bytes"`
					} `json:"counter"`
				} `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		return Crossing{}, fmt.Errorf("nat: nft -j: %w", err)
	}
	var c Crossing
	found := 0
	for _, o := range doc.Nftables {
		if o.Rule == nil {
			continue
		}
		for _, e := range o.Rule.Expr {
			if e.Counter == nil {
				continue
			}
			switch o.Rule.Chain {
			case "forward":
				c.Forwarded, found = e.Counter.Bytes, found+1
			case "input":
				c.Local, found = e.Counter.Bytes, found+1
			}
		}
	}
	if found != 2 {
		return Crossing{}, fmt.Errorf("nat: nft -j: %d counters, want forward and input", found)
	}
	return c, nil
}
