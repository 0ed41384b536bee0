//go:build !linux

package netem

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os/exec"

	"github.com/alkdev/alknet/alknet/bench/internal/netns"
)

// A Link is a running emulated path between namespaces A and B; it only
// exists on Linux.
type Link struct{ profile LinkProfile }

// errNoLinkEmulator is StartLink's answer on systems without network
// namespaces and TUN devices (all but Linux).
var errNoLinkEmulator = errors.New("link emulator: needs Linux (network namespaces and TUN devices)")

// StartLink needs Linux; elsewhere it fails.
func StartLink(ctx context.Context, p LinkProfile) (*Link, error) { return nil, errNoLinkEmulator }

// profile is the link's profile.
func (l *Link) Profile() LinkProfile { return l.profile }

// Addr is side's address.
func (l *Link) Addr(side Side) netip.Addr { return linkAddr[side] }

// prefix is the prefix side owns.
func (l *Link) prefix(side Side) netip.Prefix { return linkPrefix[side] }

// NS is side's network namespace: none here.
func (l *Link) NS(side Side) *netns.NS { return nil }

// Device is the name of the TUN device in each namespace.
func (l *Link) Device() string { return linkDevice }

// Namespace is side's namespace name.
func (l *Link) Namespace(side Side) string { return "" }

func (l *Link) devicePackets(side Side) (rx, tx int64, err error) { return 0, 0, errNoLinkEmulator }

// CongestionControl needs Linux.
func (l *Link) CongestionControl() string { return "" }

// Stats counts what the emulator has done so far.
func (l *Link) Stats() LinkStats { return LinkStats{} }

// err reports a forwarder that stopped on an error.
func (l *Link) err() error { return nil }

func (l *Link) suspendLoss() func() { return func() {} }

// command needs Linux: the command it returns fails to start.
func (l *Link) command(side Side, name string, args ...string) *exec.Cmd {
	return l.commandContext(context.Background(), side, name, args...)
}

// commandContext needs Linux: the command it returns fails to start.
func (l *Link) commandContext(ctx context.Context, side Side, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Err = errNoLinkEmulator
	return cmd
}

// Do needs Linux.
func (l *Link) Do(side Side, fn func() error) error { return errNoLinkEmulator }

// Close does nothing.
func (l *Link) Close() error { return nil }

func tcpBytesReceived(c net.Conn) (int64, error) { return 0, errNoLinkEmulator }

func tcpQuiet(c net.Conn) (bool, error) { return false, errNoLinkEmulator }
