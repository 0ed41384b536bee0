// Package fs will provide content-addressed storage on the alknet/fs ALPN:
// IPFS-compatible UnixFS DAGs built with boxo, a persistent block store, and
// CAR transfers that the receiver verifies block by block.
//
// The module is filled by its own issue; until then it holds no code.
package fs
