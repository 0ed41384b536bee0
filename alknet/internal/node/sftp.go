package node

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/sftp"
)

// sftpConfig is the [sftp] section: the SFTP service (alknet/sftp and the
// sftp subsystem of ssh); the user guide is docs/sftp.md. Sessions need
// sftp:read or sftp:write. Static: a change needs a restart.
type sftpConfig struct {
	// Root is the base of the per-identity directories ("<root>/<id>");
	// absolute. Default "<data-dir>/sftp".
	Root string `toml:"root"`
	// Roots gives identities their own absolute directory instead, by
	// identity id.
	Roots map[string]string `toml:"roots"`
	// MaxHandles bounds the open files and directories of one session.
	// Default 256.
	MaxHandles int `toml:"max_handles"`
	// MaxHandlesPerIdentity bounds the open files and directories of all
	// sessions of one identity, over every connection and ssh. Default
	// 1024.
	MaxHandlesPerIdentity int `toml:"max_handles_per_identity"`
	// MaxHandlesPerNode bounds the open files and directories of all
	// sessions together, each session counting one more for its root.
	// Default: half the file descriptor limit.
	MaxHandlesPerNode int `toml:"max_handles_per_node"`
	// MaxSessionsPerConn bounds the sessions (streams) of one alknet/sftp
	// connection; ssh bounds its own channels (ssh.max_channels). Default
	// 10.
	MaxSessionsPerConn int `toml:"max_sessions_per_conn"`
	// MaxSessionsPerIdentity bounds the sessions of one identity, over
	// every connection and ssh. Past any of these limits, and when the
	// node is down to its reserve of file descriptors, a new session or
	// file is refused with an SFTP failure saying why. Default 32.
	MaxSessionsPerIdentity int `toml:"max_sessions_per_identity"`
	// AllScopes are scopes every session needs, all of them. Default none.
	AllScopes []string `toml:"all_scopes"`
	// AnyScopes are scopes of which every session needs at least one, when
	// set. Default none.
	AnyScopes []string `toml:"any_scopes"`
}

// validate reports every problem of the section.
func (c *sftpConfig) validate() error {
	var errs []error
	if c.Root != "" && !filepath.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("sftp.root: %q is not an absolute path", c.Root))
	}
	for id, dir := range c.Roots {
		if !filepath.IsAbs(dir) {
			errs = append(errs, fmt.Errorf("sftp.roots.%s: %q is not an absolute path", id, dir))
		}
	}
	limits := []struct {
		key string
		v   int
	}{
		{"max_handles", c.MaxHandles},
		{"max_handles_per_identity", c.MaxHandlesPerIdentity},
		{"max_handles_per_node", c.MaxHandlesPerNode},
		{"max_sessions_per_conn", c.MaxSessionsPerConn},
		{"max_sessions_per_identity", c.MaxSessionsPerIdentity},
	}
	for _, l := range limits {
		if l.v < 0 || l.v > 1<<24 {
			errs = append(errs, fmt.Errorf("sftp.%s: %d out of range 0..%d", l.key, l.v, 1<<24))
		}
	}
	// A narrower limit above a wider one that is set could never be reached.
	for _, p := range [][2]int{{0, 1}, {1, 2}, {0, 2}, {3, 4}} {
		small, large := limits[p[0]], limits[p[1]]
		if small.v > 0 && large.v > 0 && small.v > large.v {
			errs = append(errs, fmt.Errorf("sftp.%s: %d exceeds sftp.%s %d", small.key, small.v, large.key, large.v))
		}
	}
	return errors.Join(errs...)
}

// buildSFTP makes the SFTP server, which serves alknet/sftp and the ssh
// service's sftp subsystem. It holds nothing to close.
func buildSFTP(n *node) (*sftp.Server, error) {
	c := n.cfg.SFTP
	root := c.Root
	if root == "" {
		var err error
		if root, err = filepath.Abs(filepath.Join(n.dataDir, "sftp")); err != nil {
			return nil, err
		}
	}
	srv, err := sftp.New(sftp.Config{
		Root:                   root,
		Roots:                  c.Roots,
		Access:                 core.AccessControl{AllScopes: c.AllScopes, AnyScopes: c.AnyScopes},
		MaxHandles:             c.MaxHandles,
		MaxHandlesPerIdentity:  c.MaxHandlesPerIdentity,
		MaxHandlesPerNode:      c.MaxHandlesPerNode,
		MaxSessionsPerConn:     c.MaxSessionsPerConn,
		MaxSessionsPerIdentity: c.MaxSessionsPerIdentity,
		Logger:                 n.logger,
	})
	if err != nil {
		return nil, err
	}
	sweepPartials(n, root, c.Roots, time.Now())
	return srv, nil
}

// sweepPartials removes the upload temporary files a crash left under the
// SFTP roots, from before the node started serving (so from no upload of
// this process); a failure is logged and does not stop the node.
func sweepPartials(n *node, root string, roots map[string]string, before time.Time) {
	dirs := []string{root}
	for _, dir := range roots {
		dirs = append(dirs, dir)
	}
	for _, dir := range dirs {
		count, err := sftp.SweepPartials(dir, before)
		if count > 0 {
			n.logger.Info("sftp: removed interrupted uploads", "count", count, "root", dir)
		}
		if err != nil {
			n.logger.Warn("sftp: sweeping interrupted uploads", "err", err)
		}
	}
}
