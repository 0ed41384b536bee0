// Package core is the alknet endpoint: one QUIC (UDP) and TCP+TLS listener
// pair on one port, a router that hands each connection to the handler that
// claimed the ALPN negotiated in its TLS handshake, node identity
// (Ed25519 keys, NodeIDs, self-signed certificates, pinning and
// trust-on-first-use), and the authentication values every module shares:
// [Identity], [AccessControl], API tokens and the live [Directory] of peers
// and tokens.
//
// A protocol module implements [Handler]; the CLI builds a [Router] from the
// handlers it wants and serves it with an [Endpoint]. Handlers receive the
// whole connection as a [Conn] and never branch on the transport: over
// TCP+TLS a [Conn] yields exactly one [Stream].
package core
