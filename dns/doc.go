// Package dns will serve authoritative DNS on DoQ (doq, alknet/dns), DoT, DoH
// and optional classic listeners, with self-sovereign signed records in the
// pkarr format and nodes that describe themselves.
//
// The module is filled by its own issue; until then it holds no code.
package dns
