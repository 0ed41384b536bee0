// Package setup is benchmark B2, connection set-up
// ([CompareHandshakes]): handshakes per second and connect-to-first-byte
// latency, QUIC against TCP+TLS 1.3, both through core.Endpoint and
// core.Dialer.
package setup
