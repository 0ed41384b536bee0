// Package call will implement the alknet/call protocol: length-prefixed JSON
// frames carrying call.requested, call.responded, call.completed, call.aborted
// and call.error envelopes, an operation registry with per-operation access
// control, and peer routing from a head node to its workers.
//
// The module is filled by its own issue; until then it holds no code.
package call
