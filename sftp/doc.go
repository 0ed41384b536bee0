// Package sftp will serve SFTP v3 (with the OpenSSH extensions) as raw
// packets on alknet/sftp streams and as the SSH "sftp" subsystem, rooted and
// scoped by configuration.
//
// The module is filled by its own issue; until then it holds no code.
package sftp
