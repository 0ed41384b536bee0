package dns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"
)

// DefaultTTL is the TTL of zone records that give none and no $TTL.
const DefaultTTL = 3600

// ZoneConfig describes one authoritative zone: either a zone file or
// records written inline. It is shaped for TOML ([[dns.zones]]).
type ZoneConfig struct {
	// Origin is the zone's apex, e.g. "example.org."; required. A missing
	// final dot is added.
	Origin string `toml:"origin"`
	// File is an RFC 1035 master file; $INCLUDE is refused. Exclusive with
	// Records.
	File string `toml:"file"`
	// Records are resource records in presentation format, one per string,
	// names relative to Origin ("www 300 IN A 192.0.2.1", "@ SOA …").
	Records []string `toml:"records"`
	// TTL is the TTL of records that give none. Default 3600 ([DefaultTTL]).
	TTL uint32 `toml:"ttl"`
}

// Zone is one parsed authoritative zone. It is immutable and safe for
// concurrent use.
type Zone struct {
	origin string // lower case, fully qualified
	soa    *mdns.SOA
	// names maps each lower-case owner name (and every empty non-terminal
	// between it and the apex) to its record sets by type.
	names map[string]map[uint16][]mdns.RR
}

// Origin returns the zone's apex, lower case and fully qualified.
func (z *Zone) Origin() string { return z.origin }

// Len returns the number of records in the zone.
func (z *Zone) Len() int {
	n := 0
	for _, sets := range z.names {
		for _, rrs := range sets {
			n += len(rrs)
		}
	}
	return n
}

// LoadZone parses the zone cfg describes, from its file or its records.
// Errors name the file (or "origin record N") and the line.
func LoadZone(cfg ZoneConfig) (*Zone, error) {
	origin := mdns.CanonicalName(cfg.Origin)
	if cfg.Origin == "" {
		return nil, errors.New("zone: origin is required")
	}
	if _, ok := mdns.IsDomainName(origin); !ok {
		return nil, fmt.Errorf("zone %q: origin is not a domain name", cfg.Origin)
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	switch {
	case cfg.File != "" && len(cfg.Records) > 0:
		return nil, fmt.Errorf("zone %s: give file or records, not both", origin)
	case cfg.File != "":
		f, err := os.Open(cfg.File)
		if err != nil {
			return nil, fmt.Errorf("zone %s: %w", origin, err)
		}
		defer f.Close()
		return ParseZone(f, origin, cfg.File, ttl)
	default:
		src := strings.Join(cfg.Records, "\n")
		return ParseZone(strings.NewReader(src), origin, "zone "+origin+" records", ttl)
	}
}

// ParseZone parses an RFC 1035 master file for origin. file names the
// source in errors, which carry the line and column. The zone must have
// exactly one SOA, at the apex, and every record must lie inside it.
func ParseZone(r io.Reader, origin, file string, defaultTTL uint32) (*Zone, error) {
	origin = mdns.CanonicalName(origin)
	zp := mdns.NewZoneParser(r, origin, file)
	zp.SetDefaultTTL(defaultTTL)
	zp.SetIncludeAllowed(false)
	z := &Zone{origin: origin, names: map[string]map[uint16][]mdns.RR{origin: {}}}
	var errs []error
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if err := z.add(rr); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", file, err))
		}
	}
	if err := zp.Err(); err != nil {
		errs = append(errs, err)
	}
	if z.soa == nil && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%s: zone %s has no SOA record", file, origin))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return z, nil
}

// add inserts rr, creating the empty non-terminals above it.
func (z *Zone) add(rr mdns.RR) error {
	h := rr.Header()
	name := mdns.CanonicalName(h.Name)
	if !mdns.IsSubDomain(z.origin, name) {
		return fmt.Errorf("%s %s is outside zone %s", h.Name, mdns.TypeToString[h.Rrtype], z.origin)
	}
	if h.Class != mdns.ClassINET {
		return fmt.Errorf("%s: class %s is not served", h.Name, mdns.ClassToString[h.Class])
	}
	if soa, ok := rr.(*mdns.SOA); ok {
		if name != z.origin {
			return fmt.Errorf("SOA at %s, not at the apex %s", h.Name, z.origin)
		}
		if z.soa != nil {
			return fmt.Errorf("second SOA at %s", h.Name)
		}
		z.soa = soa
	}
	sets := z.names[name]
	if sets == nil {
		sets = map[uint16][]mdns.RR{}
		z.names[name] = sets
	}
	_, hasCNAME := sets[mdns.TypeCNAME]
	switch {
	case h.Rrtype == mdns.TypeCNAME && len(sets) > 0 && !hasCNAME:
		return fmt.Errorf("CNAME at %s beside other records", h.Name)
	case h.Rrtype == mdns.TypeCNAME && hasCNAME:
		return fmt.Errorf("second CNAME at %s", h.Name)
	case h.Rrtype != mdns.TypeCNAME && hasCNAME:
		return fmt.Errorf("%s record at %s beside its CNAME", mdns.TypeToString[h.Rrtype], h.Name)
	}
	for _, old := range sets[h.Rrtype] {
		if mdns.IsDuplicate(old, rr) {
			return nil
		}
	}
	sets[h.Rrtype] = append(sets[h.Rrtype], rr)
	for n := name; n != z.origin; {
		i, end := mdns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[i:]
		if _, ok := z.names[n]; !ok {
			z.names[n] = map[uint16][]mdns.RR{}
		}
	}
	return nil
}

// maxChase bounds CNAME chains followed inside a zone.
const maxChase = 8

// result is the kind of answer a lookup found.
type result int

const (
	answered result = iota // records of the type, or a CNAME chain leaving the zone
	noData                 // the name exists without records of the type
	nxDomain               // the name does not exist
)

// lookup answers qname/qtype (qname lower case, inside the zone), following
// a CNAME chain inside the zone. The result describes the chain's last name.
func (z *Zone) lookup(qname string, qtype uint16) ([]mdns.RR, result) {
	var answer []mdns.RR
	name := qname
	for range maxChase {
		sets, ok := z.names[name]
		switch {
		case !ok:
			return answer, nxDomain
		case qtype == mdns.TypeANY:
			if rrs := minimalANY(sets); len(rrs) > 0 {
				return append(answer, rrs...), answered
			}
			return answer, noData
		case len(sets[qtype]) > 0:
			return append(answer, sets[qtype]...), answered
		case len(sets[mdns.TypeCNAME]) == 0:
			return answer, noData
		}
		cn := sets[mdns.TypeCNAME][0]
		answer = append(answer, cn)
		name = mdns.CanonicalName(cn.(*mdns.CNAME).Target)
		if !mdns.IsSubDomain(z.origin, name) || seen(answer, name) {
			return answer, answered
		}
	}
	return answer, answered
}

// seen reports whether name owns one of rrs (a CNAME loop).
func seen(rrs []mdns.RR, name string) bool {
	return slices.ContainsFunc(rrs, func(rr mdns.RR) bool { return mdns.CanonicalName(rr.Header().Name) == name })
}

// minimalANY picks one record set for an ANY query (RFC 8482): the one
// with the lowest type number.
func minimalANY(sets map[uint16][]mdns.RR) []mdns.RR {
	var best uint16
	for t := range sets {
		if len(sets[t]) > 0 && (best == 0 || t < best) {
			best = t
		}
	}
	return sets[best]
}

// negativeSOA is the SOA for the authority section of a negative answer,
// with the TTL lowered to its minimum field (RFC 2308).
func (z *Zone) negativeSOA() mdns.RR {
	soa := mdns.Copy(z.soa).(*mdns.SOA)
	soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
	return soa
}

// Zones is an immutable set of zones, found by longest suffix.
type Zones struct {
	byOrigin map[string]*Zone
}

// NewZones loads every zone in cfgs. All problems are reported at once,
// each naming its zone or file and line; on error nothing is returned, so
// a caller reloading keeps its old set.
func NewZones(cfgs []ZoneConfig) (*Zones, error) {
	zs := &Zones{byOrigin: make(map[string]*Zone, len(cfgs))}
	var errs []error
	for _, c := range cfgs {
		z, err := LoadZone(c)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := zs.byOrigin[z.origin]; dup {
			errs = append(errs, fmt.Errorf("zone %s: defined twice", z.origin))
			continue
		}
		zs.byOrigin[z.origin] = z
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return zs, nil
}

// Zone returns the zone whose origin is exactly origin.
func (zs *Zones) Zone(origin string) (*Zone, bool) {
	if zs == nil {
		return nil, false
	}
	z, ok := zs.byOrigin[mdns.CanonicalName(origin)]
	return z, ok
}

// find returns the most specific zone containing name (lower case).
func (zs *Zones) find(name string) *Zone {
	if zs == nil || len(zs.byOrigin) == 0 {
		return nil
	}
	for off, end := 0, false; !end; off, end = mdns.NextLabel(name, off) {
		if z, ok := zs.byOrigin[name[off:]]; ok {
			return z
		}
	}
	return zs.byOrigin["."]
}

// ParseRecords reads the records of an RFC 1035 master file relative to
// origin, with no zone rules (no SOA needed): for signing a packet, say.
// Errors name file and line.
func ParseRecords(r io.Reader, origin, file string) ([]mdns.RR, error) {
	zp := mdns.NewZoneParser(r, mdns.Fqdn(origin), file)
	zp.SetDefaultTTL(DefaultSignedTTL)
	zp.SetIncludeAllowed(false)
	var rrs []mdns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, err
	}
	return rrs, nil
}
