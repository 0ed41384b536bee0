// Package msg will carry end-to-end encrypted messages on the alknet/msg
// ALPN: HPKE-sealed envelopes signed by the sender's node key,
// store-and-forward inboxes, and a mixnet with fixed-size packets.
//
// The module is filled by its own issue; until then it holds no code.
package msg
