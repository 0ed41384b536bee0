// Package dns serves authoritative DNS on an alknet node: DNS over QUIC
// (RFC 9250) on the ALPNs doq and alknet/dns, DNS over TLS (RFC 7858) on
// dot, DNS over HTTPS (RFC 8484) and the pkarr relay API as http.Handlers,
// and optional classic UDP/TCP listeners. Besides zones from files or
// config it serves self-sovereign signed records in the pkarr format
// (Ed25519-signed DNS packets keyed by a NodeID), stores them durably, and
// lets nodes publish and resolve signed descriptions of themselves.
//
// Messages are github.com/miekg/dns's. [New] builds a [Server], which is a
// core.Handler; [NewZones] loads zones; [OpenStore] opens the packet store;
// [SignSelf], [Publisher] and [Resolve] handle self-description.
package dns
