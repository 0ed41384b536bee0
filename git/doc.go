// Package git will host git repositories over the smart protocol on the
// alknet/git ALPN (a git daemon request line, then upload-pack or
// receive-pack), reachable from stock git through alknet pipe and the
// git-remote-alknet helper.
//
// The module is filled by its own issue; until then it holds no code.
package git
