// Package msg carries end-to-end encrypted messages on the alknet/msg ALPN.
//
// A message is sealed into an envelope: HPKE (RFC 9180, base mode,
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to the
// recipient's X25519 messaging key, holding the sender, recipient, time,
// id, content type and body signed with the sender's Ed25519 node key, and
// padded to a size bucket. [Seal] makes one; [Opener] and [Receiver] open
// and check them.
//
// A [Handler] serves alknet/msg: it accepts envelopes for this node and for
// the recipients it hosts into a durable [Inbox] (store-and-forward), lets
// each recipient fetch and acknowledge its own envelopes, and, when
// configured as a mix, relays Sphinx packets (package
// github.com/alkdev/alknet/msg/sphinx) with keys that rotate every epoch
// ([MixEpochKey]) and optional loop cover traffic. A directory node's
// [Publisher] signs the [MixDirectory] senders take routes from, and a
// [DirectoryClient] fetches and verifies it. [Session] speaks the
// protocol; [Handler.RegisterOps] exposes msg/send, msg/inbox, msg/ack and
// msg/watch on a call registry.
//
// The wire formats are specified in docs/protocols/msg.md.
package msg
