// Package netns is the network-namespace plumbing the link emulator
// (internal/netem) and the NAT topology (internal/nat) share: create a
// named namespace ([Add]), run Go code ([NS.Do]) or a command
// ([NS.Command]) in it, remove it ([NS.Close]), and remove the namespaces
// a crashed test process left behind ([RemoveStale]). Linux only; it
// needs root (CAP_SYS_ADMIN) and the ip command.
package netns
