// Package git hosts bare git repositories over the git smart protocol on the
// alknet/git ALPN. Each bidirectional stream carries one git daemon request
// line (git-upload-pack or git-receive-pack, pkt-line framed), then protocol
// v0 of that service: clone and fetch (with shallow depth, side-band-64k and
// ofs-delta) and push (report-status, atomic, delete-refs), served in pure Go
// on go-git's object storage.
//
// Stock git reaches a [Server] through the git-remote-alknet remote helper
// ([RemoteHelper], for alknet:// URLs) or through core.gitProxy running
// "alknet pipe --alpn alknet/git --git-proxy" (for git:// URLs).
//
// Access is decided per repository by [Repo] rules; a reader without access
// gets the same "not found" answer as for a repository that does not exist.
// Management operations (list, create, delete, refs, push events) are
// registered on a call registry by [Server.Register].
package git
