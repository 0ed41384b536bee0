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

// DefaultMaxHandles is the number of files and directories a session may
// hold open at once when [Config.MaxHandles] is zero.
const DefaultMaxHandles = 256

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
	// at once. Zero means [DefaultMaxHandles]; negative is invalid.
	MaxHandles int
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
	switch {
	case cfg.MaxHandles == 0:
		cfg.MaxHandles = DefaultMaxHandles
	case cfg.MaxHandles < 0:
		errs = append(errs, fieldErr("MaxHandles", "%d is negative", cfg.MaxHandles))
	}
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

// fieldErr is a config error naming its field.
func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}
