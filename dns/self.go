package dns

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/core"
)

// SelfLabel is the name, under a node's key, of its self-description.
const SelfLabel = "_alknet"

// NodeInfo is what a node says about itself in its signed packet.
type NodeInfo struct {
	// ALPNs are the protocols the node serves, in its router's order.
	ALPNs []string
	// Port is the node's UDP/TCP port; 0 leaves it out.
	Port uint16
	// Addrs are address hints; may be empty.
	Addrs []netip.Addr
	// Version is the software version, published as TXT "v=<version>".
	Version string
	// Via are heads the node is reachable through by relay
	// ("<nodeid>@host:port", docs/protocols/relay.md), published as one
	// TXT "via=<nodeid>@host:port" each: a node behind NAT that joined a
	// head names it. ReadSelf keeps only entries that pin a NodeID.
	Via []string
	// TTL is the records' TTL in seconds. Zero: DefaultSignedTTL.
	TTL uint32
}

// NodeRecord is a verified self-description read from a signed packet.
type NodeRecord struct {
	NodeID core.NodeID
	// Time is the packet's timestamp.
	Time time.Time
	NodeInfo
}

// Equal reports whether two infos publish the same records.
func (i NodeInfo) Equal(o NodeInfo) bool {
	return slices.Equal(i.ALPNs, o.ALPNs) && i.Port == o.Port && slices.Equal(i.Addrs, o.Addrs) &&
		i.Version == o.Version && i.TTL == o.TTL && slices.Equal(i.Via, o.Via)
}

// SignSelf builds and signs key's self-description at time at: an SVCB
// record at "_alknet" listing ALPNs, port and address hints, a TXT record
// "v=<version>", and a TXT record "via=<nodeid>@host:port" per head.
func SignSelf(key ed25519.PrivateKey, info NodeInfo, at time.Time) (*SignedPacket, error) {
	if len(info.ALPNs) == 0 {
		return nil, errors.New("dns: self-description: no ALPNs")
	}
	ttl := info.TTL
	if ttl == 0 {
		ttl = DefaultSignedTTL
	}
	hdr := func(t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: SelfLabel + ".", Rrtype: t, Class: mdns.ClassINET, Ttl: ttl}
	}
	svcb := &mdns.SVCB{Hdr: hdr(mdns.TypeSVCB), Priority: 1, Target: "."}
	svcb.Value = append(svcb.Value, &mdns.SVCBAlpn{Alpn: info.ALPNs})
	if info.Port != 0 {
		svcb.Value = append(svcb.Value, &mdns.SVCBPort{Port: info.Port})
	}
	var v4, v6 []net.IP
	for _, a := range info.Addrs {
		if a.Unmap().Is4() {
			v4 = append(v4, net.IP(a.Unmap().AsSlice()))
		} else {
			v6 = append(v6, net.IP(a.AsSlice()))
		}
	}
	if len(v4) > 0 {
		svcb.Value = append(svcb.Value, &mdns.SVCBIPv4Hint{Hint: v4})
	}
	if len(v6) > 0 {
		svcb.Value = append(svcb.Value, &mdns.SVCBIPv6Hint{Hint: v6})
	}
	rrs := []mdns.RR{svcb}
	if info.Version != "" {
		rrs = append(rrs, &mdns.TXT{Hdr: hdr(mdns.TypeTXT), Txt: []string{"v=" + info.Version}})
	}
	for _, v := range info.Via {
		if id, _, err := core.ParseAddr(v); err != nil || id.IsZero() {
			return nil, fmt.Errorf("dns: self-description: via %q: want <nodeid>@host:port", v)
		}
		rrs = append(rrs, &mdns.TXT{Hdr: hdr(mdns.TypeTXT), Txt: []string{"via=" + v}})
	}
	return Sign(key, at, rrs)
}

// ReadSelf reads the self-description in p.
func ReadSelf(p *SignedPacket) (NodeRecord, error) {
	rec := NodeRecord{NodeID: p.Key(), Time: p.Time()}
	name := SelfLabel + "." + p.Key().String() + "."
	found := false
	for _, rr := range p.records {
		if mdns.CanonicalName(rr.Header().Name) != name {
			continue
		}
		switch r := rr.(type) {
		case *mdns.SVCB:
			found = true
			rec.TTL = r.Hdr.Ttl
			for _, kv := range r.Value {
				switch v := kv.(type) {
				case *mdns.SVCBAlpn:
					rec.ALPNs = append(rec.ALPNs, v.Alpn...)
				case *mdns.SVCBPort:
					rec.Port = v.Port
				case *mdns.SVCBIPv4Hint:
					rec.Addrs = appendIPs(rec.Addrs, v.Hint)
				case *mdns.SVCBIPv6Hint:
					rec.Addrs = appendIPs(rec.Addrs, v.Hint)
				}
			}
		case *mdns.TXT:
			for _, s := range r.Txt {
				if v, ok := strings.CutPrefix(s, "v="); ok {
					rec.Version = v
				}
				if v, ok := strings.CutPrefix(s, "via="); ok {
					if id, _, err := core.ParseAddr(v); err == nil && !id.IsZero() {
						rec.Via = append(rec.Via, v)
					}
				}
			}
		}
	}
	if !found {
		return rec, fmt.Errorf("dns: %s has no %s SVCB record", p.Key().ShortString(), SelfLabel)
	}
	return rec, nil
}

func appendIPs(dst []netip.Addr, ips []net.IP) []netip.Addr {
	for _, ip := range ips {
		if a, ok := netip.AddrFromSlice(ip); ok {
			dst = append(dst, a.Unmap())
		}
	}
	return dst
}
