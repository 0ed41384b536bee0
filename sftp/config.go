package sftp

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/alkdev/alknet/core"
)

// ALPN is the protocol [Server] serves: raw SFTP v3 packets, one session per
// stream.
const ALPN = "alknet/sftp"

// Scopes a session's identity needs.
const (
	// ScopeRead allows opening files for reading, listing directories,
	// stat, lstat, readlink and statvfs.
	ScopeRead = "sftp:read"
	// ScopeWrite allows uploads, mkdir, rmdir, remove, rename, setstat,
	// symlink and hardlink.
	ScopeWrite = "sftp:write"
)

// Defaults of the limits in [Config], used where a field is zero.
const (
	// DefaultMaxHandles is the number of files and directories a session
	// may hold open at once.
	DefaultMaxHandles = 256
	// DefaultMaxHandlesPerIdentity is the number of files and directories
	// all sessions of one identity may hold open at once.
	DefaultMaxHandlesPerIdentity = 1024
	// DefaultMaxHandlesPerNode is [Config.MaxHandlesPerNode] where the
	// process's file descriptor limit cannot be read.
	DefaultMaxHandlesPerNode = 4096
	// DefaultMaxSessionsPerConn is the number of sessions one connection
	// may hold at once.
	DefaultMaxSessionsPerConn = 10
	// DefaultMaxSessionsPerIdentity is the number of sessions one identity
	// may hold at once, over all its connections.
	DefaultMaxSessionsPerIdentity = 32
)

// maxLimit bounds every limit in Config.
const maxLimit = 1 << 24

// Config configures a [Server]. The zero value is not valid: Root or Roots
// must name where files live.
type Config struct {
	// Root is the base directory of per-identity roots: an identity with ID
	// "alice" is confined to Root/alice, created with mode 0700 (as is Root
	// itself) on its first session. Identity IDs used this way must be 1 to
	// 128 characters of [A-Za-z0-9._-] starting with a letter or digit;
	// other identities are refused unless Roots names their directory.
	// Must be an absolute path. Empty: only identities listed in Roots are
	// served.
	Root string
	// Roots maps identity IDs to their own root directory, overriding Root.
	// Paths must be absolute; a missing directory is created with mode
	// 0700 on first use. Several identities may share a directory.
	Roots map[string]string
	// Access decides who may open sessions at all. The zero value admits
	// any authenticated identity. Sessions always need an identity (it
	// picks the root), so Access.Public is refused. Beyond Access, a
	// session needs [ScopeRead] or [ScopeWrite], and each operation checks
	// its own scope.
	Access core.AccessControl
	// MaxHandles limits the files and directories one session may hold open
	// at once. Zero means [DefaultMaxHandles]; valid up to 1<<24.
	MaxHandles int
	// MaxHandlesPerIdentity limits the files and directories all sessions
	// of one identity hold open at once, on every connection and through
	// the ssh subsystem. Zero means [DefaultMaxHandlesPerIdentity]; valid
	// up to 1<<24.
	MaxHandlesPerIdentity int
	// MaxHandlesPerNode limits the descriptors the server holds for all
	// sessions together: each open file or directory, and each session for
	// its root directory. Zero means half the process's soft file
	// descriptor limit as [New] finds it ([core.FileLimit]), or
	// [DefaultMaxHandlesPerNode] where it cannot be read; valid up to
	// 1<<24.
	MaxHandlesPerNode int
	// MaxSessionsPerConn limits the sessions (streams) one alknet/sftp
	// connection holds at once. The ssh subsystem's sessions per SSH
	// connection are bounded by the ssh module's channel limit. Zero means
	// [DefaultMaxSessionsPerConn]; valid up to 1<<24.
	MaxSessionsPerConn int
	// MaxSessionsPerIdentity limits the sessions one identity holds at
	// once, on every connection and through the ssh subsystem. Zero means
	// [DefaultMaxSessionsPerIdentity]; valid up to 1<<24.
	//
	// Past any of these limits, and while the process is down to its
	// reserve of descriptors ([core.FilesLow]), a new handle or session is
	// refused with a FAILURE status whose message says why ("server: too
	// many open files, try later" for the node's own limits); the
	// connection and the other sessions go on.
	MaxSessionsPerIdentity int
	// Logger receives auth lines and session events; nil means
	// slog.Default(). Give a logger without connection attributes so the
	// auth line keeps the shape docs/fail2ban expects.
	Logger *slog.Logger
}

// validate checks cfg and returns a copy with defaults filled in; it
// reports every problem at once.
func (cfg Config) validate() (Config, error) {
	var errs []error
	if cfg.Root == "" && len(cfg.Roots) == 0 {
		errs = append(errs, fieldErr("Root", "a base directory (or Roots) is required"))
	}
	if cfg.Root != "" && !filepath.IsAbs(cfg.Root) {
		errs = append(errs, fieldErr("Root", "%q is not an absolute path", cfg.Root))
	}
	for id, dir := range cfg.Roots {
		switch {
		case id == "":
			errs = append(errs, fieldErr("Roots", "empty identity id"))
		case dir == "" || !filepath.IsAbs(dir):
			errs = append(errs, fieldErr(fmt.Sprintf("Roots[%q]", id), "%q is not an absolute path", dir))
		}
	}
	if cfg.Access.Public {
		errs = append(errs, fieldErr("Access.Public", "sessions need an identity to pick their root; public access is not supported"))
	}
	for _, s := range append(append([]string(nil), cfg.Access.AllScopes...), cfg.Access.AnyScopes...) {
		if !core.ValidScope(s) {
			errs = append(errs, fieldErr("Access", "invalid scope %q", s))
		}
	}
	errs = append(errs, cfg.validateLimits()...)
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("sftp: config: %w", err)
	}
	if cfg.Root != "" {
		cfg.Root = filepath.Clean(cfg.Root)
	}
	roots := make(map[string]string, len(cfg.Roots))
	for id, dir := range cfg.Roots {
		roots[id] = filepath.Clean(dir)
	}
	cfg.Roots = roots
	cfg.Access.AllScopes = slices.Clone(cfg.Access.AllScopes)
	cfg.Access.AnyScopes = slices.Clone(cfg.Access.AnyScopes)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// validateLimits checks the Max* fields, including that a smaller scope's
// limit set explicitly does not exceed a larger scope's (it could never be
// reached), and fills in their defaults.
func (cfg *Config) validateLimits() []error {
	var errs []error
	limits := []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxHandles", &cfg.MaxHandles, DefaultMaxHandles},
		{"MaxHandlesPerIdentity", &cfg.MaxHandlesPerIdentity, DefaultMaxHandlesPerIdentity},
		{"MaxHandlesPerNode", &cfg.MaxHandlesPerNode, defaultMaxHandlesPerNode()},
		{"MaxSessionsPerConn", &cfg.MaxSessionsPerConn, DefaultMaxSessionsPerConn},
		{"MaxSessionsPerIdentity", &cfg.MaxSessionsPerIdentity, DefaultMaxSessionsPerIdentity},
	}
	for _, l := range limits {
		if *l.v < 0 || *l.v > maxLimit {
			errs = append(errs, fieldErr(l.name, "%d out of range 0..%d", *l.v, maxLimit))
		}
	}
	for _, pair := range [][2]int{{0, 1}, {1, 2}, {0, 2}, {3, 4}} {
		small, large := limits[pair[0]], limits[pair[1]]
		if *small.v > 0 && *large.v > 0 && *small.v > *large.v {
			errs = append(errs, fieldErr(small.name, "%d exceeds %s %d", *small.v, large.name, *large.v))
		}
	}
	for _, l := range limits {
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	return errs
}

// defaultMaxHandlesPerNode is half the soft file descriptor limit, or
// DefaultMaxHandlesPerNode where it cannot be read.
func defaultMaxHandlesPerNode() int {
	soft, _, err := core.FileLimit()
	if err != nil || soft == 0 {
		return DefaultMaxHandlesPerNode
	}
	return int(max(1, min(soft/2, maxLimit)))
}

// fieldErr is a config error naming its field.
func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}
