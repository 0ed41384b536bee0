// Package call implements the alknet/call protocol: JSON calls between
// nodes, an operation registry with per-operation access control, and peer
// routing from a head node to the workers attached to it.
//
// On the wire a frame is a 4-byte big-endian length and that many bytes of
// UTF-8 JSON holding an envelope {"type","id","payload"}; six types exist:
// call.requested, call.responded, call.completed, call.aborted, call.error
// and call.credit (see docs/protocols/call.md). On QUIC every call gets its
// own stream and QUIC's flow control; on single-stream transports (TCP+TLS)
// one stream carries every call, multiplexed by id, in both directions, and
// each call has a window of [CallWindow] bytes that the caller renews with
// call.credit as its consumer takes events, so a slow consumer slows only
// its own call. After the handshake the protocol is symmetric: either side
// may call the other.
//
// A node registers operations in a [Registry], serves them with a [Handler]
// on core's endpoint, and calls others with a [Client] (or, from a handler,
// through its [Request]).
package call
