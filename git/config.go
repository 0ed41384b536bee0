package git

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
)

// ALPN is the protocol [Server] serves: one git daemon request line, then
// the smart protocol, per stream.
const ALPN = "alknet/git"

// Scopes an identity may need.
const (
	// ScopeRead lets an identity clone and fetch repositories whose rule
	// names no readers.
	ScopeRead = "git:read"
	// ScopeWrite lets an identity push to repositories whose rule names no
	// writers; writers can also read.
	ScopeWrite = "git:write"
	// ScopeCreate lets an identity with write access create a repository by
	// pushing to it, when [Config.AllowCreate] is set.
	ScopeCreate = "git:create"
	// ScopeAdmin lets an identity delete repositories through the
	// git/repos/delete operation.
	ScopeAdmin = "admin"
)

// Defaults for the zero values of [Config].
const (
	DefaultBranch         = "main"
	DefaultRequestTimeout = 30 * time.Second
	DefaultMaxPackBytes   = 1 << 30
	DefaultPackWindow     = 10
)

// Grant names who holds a permission: identities whose ID is listed, and
// identities holding any of the scopes.
type Grant struct {
	// IDs are identity IDs.
	IDs []string
	// Scopes are scopes, any one of which suffices ("team:*" patterns
	// allowed, see [core.Identity.HasScope]).
	Scopes []string
}

// empty reports whether g names nobody.
func (g Grant) empty() bool { return len(g.IDs) == 0 && len(g.Scopes) == 0 }

// allows reports whether id holds g; a nil identity holds nothing.
func (g Grant) allows(id *core.Identity) bool {
	if id == nil {
		return false
	}
	if slices.Contains(g.IDs, id.ID) {
		return true
	}
	return slices.ContainsFunc(g.Scopes, id.HasScope)
}

// Repo is the access rule of one repository.
type Repo struct {
	// Public lets anyone read, without an identity.
	Public bool
	// Read names the readers. Empty: identities holding [ScopeRead].
	// Writers can always read.
	Read Grant
	// Write names who may push. Empty: identities holding [ScopeWrite].
	Write Grant
	// AllowForce accepts non-fast-forward updates of branches that are not
	// protected. Off: only fast-forwards (and tag creation) are accepted.
	AllowForce bool
	// Protected lists branches that are never force-updated or deleted:
	// names such as "main" (refs/heads/main) or prefixes ending in "*"
	// ("release/*").
	Protected []string
}

// canRead reports whether id may fetch.
func (r Repo) canRead(id *core.Identity) bool {
	if r.Public || r.canWrite(id) {
		return true
	}
	if r.Read.empty() {
		return id.HasScope(ScopeRead)
	}
	return r.Read.allows(id)
}

// canWrite reports whether id may push.
func (r Repo) canWrite(id *core.Identity) bool {
	if r.Write.empty() {
		return id.HasScope(ScopeWrite)
	}
	return r.Write.allows(id)
}

// protected reports whether the branch ref (refs/heads/...) is protected.
func (r Repo) protected(ref string) bool {
	branch, ok := strings.CutPrefix(ref, "refs/heads/")
	if !ok {
		return false
	}
	for _, p := range r.Protected {
		if prefix, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(branch, prefix) || p == branch {
			return true
		}
	}
	return false
}

// Rules are the access rules of every repository. They can be replaced
// while the server runs ([Server.SetRules]).
type Rules struct {
	// Default applies to repositories not in Repos. Its zero value needs
	// [ScopeRead] to read and [ScopeWrite] to push.
	Default Repo
	// Repos maps canonical repository names ("name", "owner/name", without
	// ".git") to their rule.
	Repos map[string]Repo
}

// For returns the rule of the named repository.
func (r *Rules) For(name string) Repo {
	if rule, ok := r.Repos[name]; ok {
		return rule
	}
	return r.Default
}

// Validate reports every problem of r, each naming its field.
func (r Rules) Validate() error {
	_, err := r.validate()
	return err
}

// validate checks r and returns a deep copy.
func (r Rules) validate() (Rules, error) {
	var errs []error
	check := func(field string, rule Repo) Repo {
		for _, g := range []Grant{rule.Read, rule.Write} {
			for _, s := range g.Scopes {
				if !core.ValidScope(s) {
					errs = append(errs, fieldErr(field, "invalid scope %q", s))
				}
			}
			for _, id := range g.IDs {
				if id == "" {
					errs = append(errs, fieldErr(field, "empty identity id"))
				}
			}
		}
		for _, p := range rule.Protected {
			if p == "" || strings.ContainsAny(p, " \x00") || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
				errs = append(errs, fieldErr(field, "invalid protected branch %q", p))
			}
		}
		rule.Read = Grant{IDs: slices.Clone(rule.Read.IDs), Scopes: slices.Clone(rule.Read.Scopes)}
		rule.Write = Grant{IDs: slices.Clone(rule.Write.IDs), Scopes: slices.Clone(rule.Write.Scopes)}
		rule.Protected = slices.Clone(rule.Protected)
		return rule
	}
	out := Rules{Default: check("Rules.Default", r.Default), Repos: make(map[string]Repo, len(r.Repos))}
	for name, rule := range r.Repos {
		field := fmt.Sprintf("Rules.Repos[%q]", name)
		if err := validName(name); err != nil {
			errs = append(errs, fieldErr(field, "%v", err))
		}
		out.Repos[name] = check(field, rule)
	}
	return out, errors.Join(errs...)
}

// Config configures a [Server]. Root is required; every other zero value
// is the documented default.
type Config struct {
	// Root is the directory holding the bare repositories: "name" lives in
	// Root/name.git, "owner/name" in Root/owner/name.git. Must be an
	// absolute path; it is created (mode 0700) when the first repository is.
	Root string
	// Rules decide who reads and writes each repository.
	Rules Rules
	// AllowCreate lets an identity holding [ScopeCreate] (and write access
	// by the rules) create a repository by pushing to a name that does not
	// exist yet. Off by default.
	AllowCreate bool
	// DefaultBranch is the branch HEAD of a new repository points at.
	// Empty: [DefaultBranch].
	DefaultBranch string
	// RequestTimeout bounds how long a stream may take to send its request
	// line. Zero: [DefaultRequestTimeout]; negative is invalid.
	RequestTimeout time.Duration
	// MaxPackBytes bounds the size of one pushed pack. Zero:
	// [DefaultMaxPackBytes]; negative is invalid.
	MaxPackBytes int64
	// PackWindow is the delta search window used when building packs for
	// fetches: larger finds smaller packs, slower. Zero: [DefaultPackWindow];
	// negative turns delta search off.
	PackWindow int
	// Backend serves the smart protocol: [BackendGoGit] (empty means it)
	// or [BackendExec].
	Backend string
	// GitPath is the git executable [BackendExec] runs. Empty: "git",
	// looked up in PATH when the server is created.
	GitPath string
	// Logger receives stream events; nil means slog.Default().
	Logger *slog.Logger
}

// validate checks cfg and returns a copy with defaults filled in; it
// reports every problem at once.
func (cfg Config) validate() (Config, error) {
	var errs []error
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		errs = append(errs, fieldErr("Root", "%q is not an absolute path", cfg.Root))
	}
	rules, err := cfg.Rules.validate()
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.DefaultBranch == "" {
		cfg.DefaultBranch = DefaultBranch
	} else if err := validBranch(cfg.DefaultBranch); err != nil {
		errs = append(errs, fieldErr("DefaultBranch", "%v", err))
	}
	switch {
	case cfg.RequestTimeout == 0:
		cfg.RequestTimeout = DefaultRequestTimeout
	case cfg.RequestTimeout < 0:
		errs = append(errs, fieldErr("RequestTimeout", "%v is negative", cfg.RequestTimeout))
	}
	switch {
	case cfg.MaxPackBytes == 0:
		cfg.MaxPackBytes = DefaultMaxPackBytes
	case cfg.MaxPackBytes < 0:
		errs = append(errs, fieldErr("MaxPackBytes", "%d is negative", cfg.MaxPackBytes))
	}
	switch {
	case cfg.PackWindow == 0:
		cfg.PackWindow = DefaultPackWindow
	case cfg.PackWindow < 0:
		cfg.PackWindow = 0
	}
	switch cfg.Backend {
	case "", BackendGoGit:
		cfg.Backend = BackendGoGit
	case BackendExec:
		if cfg.GitPath == "" {
			cfg.GitPath = "git"
		}
		path, err := exec.LookPath(cfg.GitPath)
		if err != nil {
			errs = append(errs, fieldErr("GitPath", "backend %q needs a git executable: %v", BackendExec, err))
		}
		cfg.GitPath = path
	default:
		errs = append(errs, fieldErr("Backend", "%q is neither %q nor %q", cfg.Backend, BackendGoGit, BackendExec))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("git: config: %w", err)
	}
	cfg.Root = filepath.Clean(cfg.Root)
	cfg.Rules = rules
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// validBranch checks a branch name for DefaultBranch.
func validBranch(b string) error {
	for _, part := range strings.Split(b, "/") {
		if err := validPart(part); err != nil {
			return fmt.Errorf("branch %q: %w", b, err)
		}
	}
	return nil
}

// fieldErr is a config error naming its field.
func fieldErr(field, format string, args ...any) error {
	return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
}
