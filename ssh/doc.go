// Package ssh serves standard SSH-2 (OpenSSH-compatible) on the alknet/ssh
// ALPN: every stream of a connection carries one SSH connection, so stock
// clients reach a node through a stdio bridge,
//
//	ssh -o ProxyCommand='alknet pipe --alpn alknet/ssh %h:%p' user@host
//
// and [Server.ServeConn] and [Server.ServeListener] serve the same on plain
// TCP for a listener the CLI may run.
//
// The host key is the node key. Clients log in with a public key that the
// [core.IdentityProvider] resolves (an ssh-ed25519 key is the NodeID of its
// bytes), or with an OpenSSH user certificate from a trusted
// [CertAuthority]; there is no password or keyboard-interactive login. The
// identity must hold [ScopeConnect].
//
// Everything past login is denied unless configuration and scopes allow it:
//   - direct-tcpip (ssh -L, -D, -W): [ScopeForward] and the ordered
//     forwarding [Rule]s of the [Policy]; host names are resolved first and
//     every address is checked, and the addresses checked are the ones
//     dialled; the target is dialled before the channel is confirmed. The
//     addresses of this host (loopback, unspecified, the node's own) are one
//     class that only a rule naming this host allows ("allow self"; see
//     [Target]). The host name [CallTarget] reaches the node's call protocol
//     through [Config.CallChannel].
//   - tcpip-forward (ssh -R): [ScopeRemoteForward] and the bind rules
//     (loopback only by default).
//   - Unix sockets (streamlocal): only paths the policy lists.
//   - session exec, shell and PTY: [ScopeShell] and [Config.Exec]; env only
//     from an allow-list; subsystems from [Config.Subsystems] (the CLI wires
//     "sftp"; this module does not import sftp). Agent and X11 forwarding
//     are refused.
//
// Identity found during authentication travels in the connection's
// Permissions (ExtraData), so only the key that really signed counts. Every
// authentication outcome is one core.LogAuth line; forwarding destinations
// are never logged. A reload that revokes an identity closes its
// connections.
//
// The client side is [Dial]: an SSH client on an alknet/ssh stream that
// logs in with the node key and accepts only the verified node's key as
// host key, with optional reconnection that restores remote forwards
// ([Client.Listen]); [Forward] runs -L and -R style forwards, and package
// socks5 a SOCKS5 server over [Client.DialContext].
//
// The server also serves [FwdALPN], forwarding without an SSH layer: each
// forwarded TCP connection is one QUIC stream (one TCP+TLS connection
// where QUIC is not used) opened with a small header, decided by the same
// scopes and rules, refused with the same reasons (docs/protocols/fwd.md).
// Its client is [DialFwd], which offers DialContext and Listen as [Client]
// does.
package ssh
