package dns

import (
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/core"
)

// Server is an authoritative DNS server with a store of signed packets. It
// is a [core.Handler] for doq, dot and alknet/dns, answers classic UDP and
// TCP through [Server.ListenClassic], and gives http.Handlers for DoH
// ([Server.DoHHandler]) and the pkarr relay ([Server.RelayHandler]). All
// methods are safe for concurrent use.
type Server struct {
	cfg     Config
	store   *Store
	zones   atomic.Pointer[Zones]
	limiter *rateLimiter
	logger  *slog.Logger
}

var _ core.Handler = (*Server)(nil)

// New validates cfg and returns a server. It opens no sockets and starts
// no goroutines.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: cfg.Store, logger: cfg.Logger}
	if s.store == nil {
		// In memory: no directory to fail on, but say so if it does.
		if s.store, err = OpenStore(StoreConfig{Clock: cfg.Clock, Logger: cfg.Logger}); err != nil {
			return nil, fmt.Errorf("dns: packet store: %w", err)
		}
	}
	s.limiter = newRateLimiter(cfg.PublishRate, cfg.Clock)
	if cfg.Zones != nil {
		s.zones.Store(cfg.Zones)
	}
	return s, nil
}

// ALPNs returns alknet/dns, doq and dot.
func (s *Server) ALPNs() []string { return []string{ALPN, ALPNDoQ, ALPNDoT} }

// SetZones atomically replaces the served zones; queries in flight finish
// on the old set. Build zs with [NewZones], which fails as a whole on a bad
// zone, so a failed reload keeps the old set.
func (s *Server) SetZones(zs *Zones) { s.zones.Store(zs) }

// Store returns the server's signed-packet store.
func (s *Server) Store() *Store { return s.store }

// Answer returns the authoritative answer to req. udpSize is the largest
// answer the transport carries (0: a stream transport, no limit beyond
// 65535); a larger answer is truncated with TC set. Answer returns nil for
// a message that must not be answered (a response).
func (s *Server) Answer(req *mdns.Msg, udpSize int) *mdns.Msg {
	if req.Response {
		return nil
	}
	resp := new(mdns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = false
	opt := req.IsEdns0()
	if opt != nil {
		resp.SetEdns0(uint16(s.cfg.MaxUDPBytes), false)
		if opt.Version() != 0 {
			resp.Rcode = mdns.RcodeBadVers
			return resp
		}
	}
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		resp.Rcode = mdns.RcodeNotImplemented
		return resp
	case len(req.Question) != 1:
		resp.Rcode = mdns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
		resp.Rcode = mdns.RcodeRefused
		return resp
	}
	s.resolve(resp, mdns.CanonicalName(q.Name), q.Qtype)
	if udpSize > 0 {
		size := mdns.MinMsgSize
		if opt != nil {
			size = max(size, min(int(opt.UDPSize()), udpSize))
		}
		resp.Truncate(size)
	} else {
		resp.Compress = true
	}
	return resp
}

// resolve fills resp for qname/qtype: from a signed packet when qname lies
// under "<z32>.<signed origin>", else from the most specific zone.
func (s *Server) resolve(resp *mdns.Msg, qname string, qtype uint16) {
	z := s.zones.Load().find(qname)
	if z == nil {
		resp.Rcode = mdns.RcodeRefused
		return
	}
	resp.Authoritative = true
	if sub, ok := s.signedZone(z, qname); ok {
		if sub == nil {
			resp.Rcode = mdns.RcodeNameError
			resp.Ns = []mdns.RR{z.negativeSOA()}
			return
		}
		answerFrom(resp, sub, z, qname, qtype)
		return
	}
	answerFrom(resp, z, z, qname, qtype)
}

// answerFrom answers from zone data in z, with soaZone's SOA on negative
// answers (NXDOMAIN and NODATA, RFC 2308).
func answerFrom(resp *mdns.Msg, z, soaZone *Zone, qname string, qtype uint16) {
	ans, res := z.lookup(qname, qtype)
	resp.Answer = ans
	if res == nxDomain {
		resp.Rcode = mdns.RcodeNameError
	}
	if res != answered {
		resp.Ns = []mdns.RR{soaZone.negativeSOA()}
	}
}

// signedZone reports whether qname lies under "<z32>.<origin>" for a
// signed origin that is z's; it then returns the zone built from that key's
// packet, or nil when the key has none.
func (s *Server) signedZone(z *Zone, qname string) (*Zone, bool) {
	origin := z.origin
	if !s.isSignedOrigin(origin) || qname == origin {
		return nil, false
	}
	rest := strings.TrimSuffix(qname, "."+origin)
	if origin == "." {
		rest = strings.TrimSuffix(qname, ".")
	}
	label := rest[strings.LastIndexByte(rest, '.')+1:]
	key, err := core.ParseNodeID(label)
	if err != nil {
		return nil, false
	}
	p, ok := s.store.Get(key)
	if !ok {
		return nil, true
	}
	return packetZone(p, label+"."+origin), true
}

func (s *Server) isSignedOrigin(origin string) bool {
	for _, o := range s.cfg.SignedOrigins {
		if o == origin {
			return true
		}
	}
	return false
}

// packetZone turns p's records into a zone at apex, keeping their TTLs.
func packetZone(p *SignedPacket, apex string) *Zone {
	label := p.key.String() + "."
	z := &Zone{origin: apex, names: map[string]map[uint16][]mdns.RR{apex: {}}}
	for _, rr := range p.Records() {
		h := rr.Header()
		h.Name = strings.TrimSuffix(mdns.CanonicalName(h.Name), label) + apex
		_ = z.add(rr) // a packet may break zone rules (CNAME beside data); skip such records
	}
	return z
}
