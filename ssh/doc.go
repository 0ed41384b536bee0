// Package ssh will serve standard SSH-2 (OpenSSH-compatible) on the
// alknet/ssh ALPN, one session per stream: public-key and certificate
// authentication mapped to core identities, default-deny port forwarding,
// opt-in exec and shell, and a subsystem hook the CLI wires to sftp.
//
// The module is filled by its own issue; until then it holds no code.
package ssh
