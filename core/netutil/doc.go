// Package netutil holds the network plumbing that core and the protocol
// modules share, one copy each: an accept loop that backs off on
// temporary errors ([Accept], [Serve]), a UDP and TCP pair bound on one
// port ([ListenSamePort]), a per-source connection cap ([Source], [IPCount]), a
// relay that passes half-closes on ([Relay]), a bounded lender of large
// buffers ([Lender]), a gentle close that does not
// reset the peer's unread answer ([Linger]), and a periodic check that a
// caller still stands ([Watcher]).
//
// It knows no protocol and no identity: callers pass what to check and
// what to do.
package netutil
