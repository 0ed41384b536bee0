//go:build !linux

package bench

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
)

// A Link is a running emulated path between namespaces A and B; it only
// exists on Linux.
type Link struct{ profile LinkProfile }

// StartLink needs Linux; elsewhere it fails.
func StartLink(ctx context.Context, p LinkProfile) (*Link, error) { return nil, ErrNoLinkEmulator }

// Profile is the link's profile.
func (l *Link) Profile() LinkProfile { return l.profile }

// Addr is side's address.
func (l *Link) Addr(side Side) netip.Addr { return linkAddr[side] }

// Prefix is the prefix side owns.
func (l *Link) Prefix(side Side) netip.Prefix { return linkPrefix[side] }

// Namespace is side's namespace name.
func (l *Link) Namespace(side Side) string { return "" }

func (l *Link) devicePackets(side Side) (rx, tx int64, err error) { return 0, 0, ErrNoLinkEmulator }

// CongestionControl needs Linux.
func (l *Link) CongestionControl() string { return "" }

// Stats counts what the emulator has done so far.
func (l *Link) Stats() LinkStats { return LinkStats{} }

// Err reports a forwarder that stopped on an error.
func (l *Link) Err() error { return nil }

func (l *Link) suspendLoss() func() { return func() {} }

// Command needs Linux: the command it returns fails to start.
func (l *Link) Command(side Side, name string, args ...string) *exec.Cmd {
	return l.CommandContext(context.Background(), side, name, args...)
}

// CommandContext needs Linux: the command it returns fails to start.
func (l *Link) CommandContext(ctx context.Context, side Side, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Err = ErrNoLinkEmulator
	return cmd
}

// Do needs Linux.
func (l *Link) Do(side Side, fn func() error) error { return ErrNoLinkEmulator }

// Close does nothing.
func (l *Link) Close() error { return nil }

func tcpBytesReceived(c net.Conn) (int64, error) { return 0, ErrNoLinkEmulator }

func tcpQuiet(c net.Conn) (bool, error) { return false, ErrNoLinkEmulator }
