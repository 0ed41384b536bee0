// Package nat builds the NAT topology of issue 19's reach tests in network
// namespaces: a public namespace (a head, a DHT bootstrap, anything with a
// public address lives there) and home namespaces, each behind a NAT
// namespace of its own, doing nftables masquerade:
//
//	home1 ── nat1 ── public ── nat2 ── home2
//
// A NAT is endpoint-independent ([Cone]: one public port per home socket,
// whatever the destination, so hole punching works) or [Symmetric] (a new
// public port per destination, so it does not). Both filter like home
// routers: nothing from outside reaches the home unless it answers what
// the home sent. [Start] builds it; the reach tests run `alknet serve`,
// stock ssh, sftp and git in it.
package nat
