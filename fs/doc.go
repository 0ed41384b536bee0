// Package fs is content-addressed storage for alknet: IPFS-compatible
// UnixFS DAGs built with boxo, a persistent flatfs block store with named
// pins and garbage collection ([Store]), and the alknet/fs transfer
// protocol ([Handler], [Client]) that moves DAGs as CAR v1 streams which
// the receiver verifies block by block.
//
// A file added with [Store.Add] gets the CID `ipfs add --cid-version 1`
// gives the same bytes. The wire protocol is specified in
// docs/protocols/fs.md.
package fs
