package git_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/alkdev/alknet/git"
)

var rw = []string{git.ScopeRead, git.ScopeWrite}

// TestInterop drives stock git through git-remote-alknet: push into an
// empty repository, clone (full and shallow), fetch new commits, push a
// branch and tags, delete the branch, ls-remote, and fsck the result.
func TestInterop(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		needGit(t)
		f := start(t, git.Config{Backend: backend}, peer{"alice", rw})
		if err := f.srv.Create("team/app"); err != nil {
			t.Fatal(err)
		}
		env := f.gitEnv(t, "alice")
		url := f.url("team/app")
		work := workRepo(t, env, 5)
		mustGit(t, env, work, "push", "-q", url, "main")

		full := filepath.Join(t.TempDir(), "full")
		mustGit(t, env, "", "clone", "-q", url, full)
		if got := mustGit(t, env, full, "rev-list", "--count", "HEAD"); got != "5" {
			t.Errorf("full clone has %s commits, want 5", got)
		}
		shallow := filepath.Join(t.TempDir(), "shallow")
		mustGit(t, env, "", "clone", "-q", "--depth", "1", url, shallow)
		if got := mustGit(t, env, shallow, "rev-list", "--count", "HEAD"); got != "1" {
			t.Errorf("--depth 1 clone has %s commits, want 1", got)
		}
		if got := mustGit(t, env, shallow, "rev-parse", "--is-shallow-repository"); got != "true" {
			t.Errorf("--depth 1 clone is not shallow")
		}

		commit(t, env, work, "g.txt", "new\n")
		commit(t, env, work, "g.txt", "newer\n")
		mustGit(t, env, work, "push", "-q", url, "main")
		mustGit(t, env, full, "pull", "-q", "--ff-only")
		if got, want := mustGit(t, env, full, "rev-parse", "HEAD"), mustGit(t, env, work, "rev-parse", "HEAD"); got != want {
			t.Errorf("after fetch HEAD is %s, want %s", got, want)
		}
		mustGit(t, env, shallow, "fetch", "-q", "--depth", "2")
		if got := mustGit(t, env, shallow, "rev-list", "--count", "origin/main"); got != "2" {
			t.Errorf("shallow fetch --depth 2 has %s commits, want 2", got)
		}

		mustGit(t, env, work, "branch", "feature")
		mustGit(t, env, work, "tag", "v1")
		mustGit(t, env, work, "tag", "-a", "-m", "release", "v2")
		mustGit(t, env, work, "push", "-q", url, "feature")
		mustGit(t, env, work, "push", "-q", url, "--tags")
		refs := mustGit(t, env, "", "ls-remote", url)
		for _, want := range []string{"HEAD", "refs/heads/main", "refs/heads/feature", "refs/tags/v1", "refs/tags/v2", "refs/tags/v2^{}"} {
			if !hasRef(refs, want) {
				t.Errorf("ls-remote lacks %s:\n%s", want, refs)
			}
		}
		mustGit(t, env, work, "push", "-q", url, "--delete", "feature")
		if refs := mustGit(t, env, "", "ls-remote", url); hasRef(refs, "refs/heads/feature") {
			t.Errorf("feature still there after delete:\n%s", refs)
		}
		mustGit(t, env, full, "fetch", "-q", "--tags")
		if got := mustGit(t, env, full, "tag", "--list"); got != "v1\nv2" {
			t.Errorf("fetched tags %q, want v1 and v2", got)
		}
		mustGit(t, env, "", "--git-dir", filepath.Join(f.root, "team", "app.git"), "fsck", "--strict")
	})
}

// hasRef reports whether ls-remote output lists ref.
func hasRef(lsRemote, ref string) bool {
	for _, line := range strings.Split(lsRemote, "\n") {
		if _, name, ok := strings.Cut(line, "\t"); ok && name == ref {
			return true
		}
	}
	return false
}
