package node

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/alkdev/alknet/git"
)

// gitConfig is the [git] section: the git service (alknet/git); the user
// guide is docs/git.md. Rules (default and repos) are reloaded without a
// restart (invalid rules keep the old ones); the rest is static.
type gitConfig struct {
	// Root holds the bare repositories; absolute. Default "<data-dir>/git".
	Root string `toml:"root"`
	// AllowCreate lets identities with git:create (and write access) create
	// a repository by pushing to it. Default false.
	AllowCreate bool `toml:"allow_create"`
	// DefaultBranch is where HEAD of a new repository points. Default "main".
	DefaultBranch string `toml:"default_branch"`
	// MaxPackBytes bounds one pushed pack. Default 1073741824 (1 GiB).
	MaxPackBytes int64 `toml:"max_pack_bytes"`
	// PackWindow is the delta search window for fetches; -1 turns delta
	// search off. Default 10.
	PackWindow int `toml:"pack_window"`
	// Backend serves the smart protocol: "go-git" (pure Go, the default) or
	// "exec", which runs git upload-pack and git receive-pack from an
	// installed git, as git daemon does (faster and leaner on large
	// repositories; alknet still decides access and push policy).
	Backend string `toml:"backend"`
	// GitPath is the git executable the exec backend runs. Default "git",
	// looked up in PATH.
	GitPath string `toml:"git_path"`
	// Default is the rule of repositories not listed in Repos; with no keys
	// set, readers need git:read and pushers git:write. Dynamic:
	// hot-reloaded.
	Default gitRepoConfig `toml:"default" reload:"dynamic"`
	// Repos are per-repository rules by name ("name" or "owner/name"),
	// e.g. [git.repos."owner/name"]. Dynamic: hot-reloaded.
	Repos map[string]gitRepoConfig `toml:"repos" reload:"dynamic"`
}

// gitRepoConfig is one repository's access rule ([git.repos."name"]).
type gitRepoConfig struct {
	// Public allows anonymous reads. Default false.
	Public bool `toml:"public"`
	// ReadIDs are the identities that may read. With ReadScopes empty as
	// well, readers need the git:read scope.
	ReadIDs []string `toml:"read_ids"`
	// ReadScopes are scopes that let an identity read.
	ReadScopes []string `toml:"read_scopes"`
	// WriteIDs are the identities that may push (and read). With
	// WriteScopes empty as well, pushers need the git:write scope.
	WriteIDs []string `toml:"write_ids"`
	// WriteScopes are scopes that let an identity push (and read).
	WriteScopes []string `toml:"write_scopes"`
	// AllowForce allows non-fast-forward updates and moving tags.
	// Default false.
	AllowForce bool `toml:"allow_force"`
	// Protected are branches (such as "main" or "release/*") that are
	// never forced or deleted.
	Protected []string `toml:"protected"`
}

// repo converts the section to the git module's rule.
func (c gitRepoConfig) repo() git.Repo {
	return git.Repo{
		Public:     c.Public,
		Read:       git.Grant{IDs: c.ReadIDs, Scopes: c.ReadScopes},
		Write:      git.Grant{IDs: c.WriteIDs, Scopes: c.WriteScopes},
		AllowForce: c.AllowForce,
		Protected:  c.Protected,
	}
}

// rules converts the section's access rules.
func (c *gitConfig) rules() git.Rules {
	r := git.Rules{Default: c.Default.repo(), Repos: make(map[string]git.Repo, len(c.Repos))}
	for name, rc := range c.Repos {
		r.Repos[name] = rc.repo()
	}
	return r
}

// validate reports every problem of the section.
func (c *gitConfig) validate() error {
	var errs []error
	if c.Root != "" && !filepath.IsAbs(c.Root) {
		errs = append(errs, fmt.Errorf("git.root: %q is not an absolute path", c.Root))
	}
	if c.MaxPackBytes < 0 {
		errs = append(errs, fmt.Errorf("git.max_pack_bytes: %d is negative", c.MaxPackBytes))
	}
	if c.Backend != "" && c.Backend != git.BackendGoGit && c.Backend != git.BackendExec {
		errs = append(errs, fmt.Errorf("git.backend: %q is neither %q nor %q", c.Backend, git.BackendGoGit, git.BackendExec))
	}
	if err := c.rules().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("git: %w", err))
	}
	return errors.Join(errs...)
}

// buildGit makes the git server, registers its management operations and
// reloads its access rules with the config.
func buildGit(n *node) (part, error) {
	c := n.cfg.Git
	root := c.Root
	if root == "" {
		var err error
		if root, err = filepath.Abs(filepath.Join(n.dataDir, "git")); err != nil {
			return part{}, err
		}
	}
	srv, err := git.New(git.Config{
		Root:          root,
		Rules:         c.rules(),
		AllowCreate:   c.AllowCreate,
		DefaultBranch: c.DefaultBranch,
		MaxPackBytes:  c.MaxPackBytes,
		PackWindow:    c.PackWindow,
		Backend:       c.Backend,
		GitPath:       c.GitPath,
		Logger:        n.logger,
	})
	if err != nil {
		return part{}, err
	}
	if err := srv.Register(n.calls); err != nil {
		return part{}, err
	}
	// Pushes a crash interrupted left temporary packs and quarantines; none
	// from before now belongs to a push of this process.
	count, err := git.SweepTemp(root, time.Now())
	if count > 0 {
		n.logger.Info("git: removed temporary files of interrupted pushes", "count", count, "root", root)
	}
	if err != nil {
		n.logger.Warn("git: sweeping temporary files of interrupted pushes", "err", err)
	}
	return part{handler: srv, reload: func(next *Config) {
		if err := srv.SetRules(next.Git.rules()); err != nil {
			n.logger.Error("git rules not reloaded", "err", err)
		}
	}}, nil
}
