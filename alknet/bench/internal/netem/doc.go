// Package netem is the client side of the link emulator: [StartLink]
// joins two network namespaces through a user-space TUN forwarder
// (internal/linkemu) with delay, jitter, random and Gilbert-Elliott loss,
// a rate limit and a drop-tail queue ([LinkProfile], [LinkProfiles]);
// [Link.Verify] proves the emulator is not the bottleneck before a
// profile's numbers count. [Place] runs a rig's servers and clients on
// either side of a link.
package netem
