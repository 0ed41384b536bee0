//go:build !linux

package netns

import (
	"context"
	"errors"
	"os/exec"
)

// errNoNamespaces is the answer on systems without network namespaces.
var errNoNamespaces = errors.New("network namespaces need Linux")

// An NS is a named network namespace; it only exists on Linux.
type NS struct{ name string }

// Add needs Linux; elsewhere it fails.
func Add(ctx context.Context, name string) (*NS, error) { return nil, errNoNamespaces }

// Name is the namespace's name.
func (n *NS) Name() string { return n.name }

// Command needs Linux: the command it returns fails to start.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Err = errNoNamespaces
	return cmd
}

// Prefix is the command-line prefix that runs a program in the namespace.
func (n *NS) Prefix() []string { return []string{"ip", "netns", "exec", n.name} }

// IP needs Linux.
func (n *NS) IP(ctx context.Context, script string) error { return errNoNamespaces }

// Do needs Linux.
func (n *NS) Do(fn func() error) error { return errNoNamespaces }

// Close does nothing.
func (n *NS) Close() error { return nil }

// RemoveStale does nothing.
func RemoveStale(ctx context.Context, prefix string) {}

// List finds none.
func List(prefix string) ([]string, error) { return nil, nil }

// ProcessAlive is unknown here: true.
func ProcessAlive(pid int) bool { return true }
