// Package socks5 is a SOCKS version 5 server (RFC 1928) for CONNECT, with
// optional username/password authentication (RFC 1929). It hands each
// request's destination, a domain name unresolved, to a dial function: the
// alknet CLI passes (*ssh.Client).DialContext, so every connection becomes
// a direct-tcpip channel and names are resolved by the node, never
// locally.
package socks5
