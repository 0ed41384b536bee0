// Package sftp serves SFTP version 3, with the OpenSSH extensions
// posix-rename, statvfs and hardlink, from a per-identity directory.
//
// A [Server] serves two ways:
//
//   - as the handler of the ALPN [ALPN] ("alknet/sftp"): every stream of a
//     connection is one SFTP session, raw SFTP packets with no SSH underneath
//     (stock OpenSSH reaches it with
//     `sftp -D 'alknet pipe --alpn alknet/sftp <addr>'`);
//   - as the "sftp" subsystem of the ssh module, through [Server.ServeStream],
//     which serves one session on any byte stream.
//
// The packet codec and request dispatch are github.com/pkg/sftp's request
// server; this package supplies the file system behind it. Every session is
// confined to its identity's directory with [os.Root]: "..", absolute paths
// and symbolic links cannot reach outside it, and symbolic links created
// through SFTP may only point at or below their own directory. Reading and
// listing need the scope [ScopeRead]; every change needs [ScopeWrite].
// Uploads that create or truncate a file (what put does) are written to a
// temporary file beside the target, synced, and renamed over the target
// when the client closes the handle, so an interrupted upload leaves the
// old file (or none) and no temporary file. Opens that keep a file's
// content (resume, partial rewrites) write in place.
//
// What a peer can make the server hold is bounded (see [Config]): open
// files and directories per session, per identity and for the node,
// sessions per connection and per identity, and nothing new while the
// process is down to its reserve of file descriptors ([core.FilesLow]).
// Past a limit the client reads a FAILURE status saying why; its
// connection and other sessions go on.
package sftp
