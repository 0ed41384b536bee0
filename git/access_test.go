package git_test

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/git"
)

// TestPushRefusals checks what git prints when the server refuses a push.
func TestPushRefusals(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		needGit(t)
		f := start(t, git.Config{Backend: backend, Rules: git.Rules{Repos: map[string]git.Repo{
			"forceable": {AllowForce: true, Protected: []string{"main"}},
		}}}, peer{"alice", rw}, peer{"reader", []string{git.ScopeRead}})
		for _, name := range []string{"app", "forceable"} {
			if err := f.srv.Create(name); err != nil {
				t.Fatal(err)
			}
		}
		alice := f.gitEnv(t, "alice")
		work := workRepo(t, alice, 3)
		mustGit(t, alice, work, "push", "-q", f.url("app"), "main")
		mustGit(t, alice, work, "push", "-q", f.url("forceable"), "main", "main:other")
		before := mustGit(t, alice, "", "ls-remote", f.url("app"))

		reader := f.gitEnv(t, "reader")
		commit(t, alice, work, "x.txt", "x\n")
		out, err := runGit(reader, work, "push", f.url("app"), "main")
		if err == nil || !strings.Contains(out, "needs write access") {
			t.Errorf("push without git:write: err %v, output:\n%s", err, out)
		}

		mustGit(t, alice, work, "reset", "-q", "--hard", "HEAD~2")
		commit(t, alice, work, "y.txt", "diverged\n")
		cases := []struct {
			name, repo, ref, want string
		}{
			{"non-fast-forward", "app", "main", "non-fast-forward"},
			{"protected branch", "forceable", "main", "protected branch"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				out, err := runGit(alice, work, "push", "--force", f.url(c.repo), "HEAD:"+c.ref)
				if err == nil || !strings.Contains(out, "[remote rejected]") || !strings.Contains(out, c.want) {
					t.Errorf("forced push: err %v, output:\n%s", err, out)
				}
			})
		}
		if after := mustGit(t, alice, "", "ls-remote", f.url("app")); after != before {
			t.Errorf("refused pushes changed refs:\nbefore %s\nafter %s", before, after)
		}
		// A forced update of an unprotected branch is allowed where AllowForce is.
		mustGit(t, alice, work, "push", "-q", "--force", f.url("forceable"), "HEAD:other")
		out, err = runGit(alice, work, "push", f.url("forceable"), "--delete", "main")
		if err == nil || !strings.Contains(out, "protected branch may not be deleted") {
			t.Errorf("deleting a protected branch: err %v, output:\n%s", err, out)
		}
		// atomic: one refused ref refuses all.
		out, err = runGit(alice, work, "push", "--atomic", f.url("forceable"), "HEAD:refs/heads/new", "--force", "HEAD:main")
		if err == nil || strings.Contains(mustGit(t, alice, "", "ls-remote", f.url("forceable")), "refs/heads/new") {
			t.Errorf("atomic push with a refused ref: err %v, output:\n%s", err, out)
		}
	})
}

// TestConcurrentPushes pushes two different commits onto the same branch at
// once: one wins, the other is refused, the repository stays consistent.
func TestConcurrentPushes(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		needGit(t)
		f := start(t, git.Config{Backend: backend}, peer{"alice", rw})
		if err := f.srv.Create("app"); err != nil {
			t.Fatal(err)
		}
		env := f.gitEnv(t, "alice")
		base := workRepo(t, env, 2)
		mustGit(t, env, base, "push", "-q", f.url("app"), "main")
		var dirs [2]string
		for i := range dirs {
			dirs[i] = filepath.Join(t.TempDir(), "c")
			mustGit(t, env, "", "clone", "-q", f.url("app"), dirs[i])
			commit(t, env, dirs[i], "c.txt", strings.Repeat("x", i+1))
		}
		var wg sync.WaitGroup
		errs := make([]error, len(dirs))
		for i, d := range dirs {
			wg.Go(func() { _, errs[i] = runGit(env, d, "push", "-q", "origin", "main") })
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			}
		}
		if won < 1 {
			t.Fatalf("no push succeeded: %v", errs)
		}
		head := mustGit(t, env, "", "--git-dir", filepath.Join(f.root, "app.git"), "rev-parse", "refs/heads/main")
		tips := []string{mustGit(t, env, dirs[0], "rev-parse", "HEAD"), mustGit(t, env, dirs[1], "rev-parse", "HEAD")}
		if head != tips[0] && head != tips[1] {
			t.Errorf("main is %s, want one of %v", head, tips)
		}
		mustGit(t, env, "", "--git-dir", filepath.Join(f.root, "app.git"), "fsck", "--strict")
	})
}

// TestPublicPrivate checks anonymous access: a public repository clones, a
// private one fails exactly like a missing one.
func TestPublicPrivate(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		needGit(t)
		f := start(t, git.Config{Backend: backend, Rules: git.Rules{Repos: map[string]git.Repo{"open": {Public: true}}}}, peer{"alice", rw})
		for _, name := range []string{"open", "closed"} {
			if err := f.srv.Create(name); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.srv.CreatePublic("marked"); err != nil {
			t.Fatal(err)
		}
		alice := f.gitEnv(t, "alice")
		work := workRepo(t, alice, 1)
		for _, name := range []string{"open", "closed", "marked"} {
			mustGit(t, alice, work, "push", "-q", f.url(name), "main")
		}
		anon := f.gitEnv(t, "")
		for _, name := range []string{"open", "marked"} {
			mustGit(t, anon, "", "clone", "-q", f.url(name), filepath.Join(t.TempDir(), name))
		}
		msg := func(repo string) string {
			out, err := runGit(anon, "", "clone", f.url(repo), filepath.Join(t.TempDir(), "x"))
			if err == nil {
				t.Errorf("anonymous clone of %s succeeded", repo)
			}
			_, rest, _ := strings.Cut(out, "\n")
			return rest
		}
		closed, missing := msg("closed"), msg("missing")
		if !strings.Contains(closed, "repository not found") || closed != missing {
			t.Errorf("private and missing differ:\nprivate: %s\nmissing: %s", closed, missing)
		}
		out, err := runGit(anon, work, "push", f.url("open"), "main:x")
		if err == nil || !strings.Contains(out, "needs write access") {
			t.Errorf("anonymous push to a public repository: err %v, output:\n%s", err, out)
		}
	})
}

// TestCreateOnPush checks that a first push creates a repository only with
// AllowCreate and the git:create scope.
func TestCreateOnPush(t *testing.T) {
	needGit(t)
	f := start(t, git.Config{AllowCreate: true}, peer{"alice", rw}, peer{"maker", append([]string{git.ScopeCreate}, rw...)})
	alice := f.gitEnv(t, "alice")
	work := workRepo(t, alice, 1)
	out, err := runGit(alice, work, "push", f.url("alice/new"), "main")
	if err == nil || !strings.Contains(out, "repository not found") {
		t.Errorf("push to a missing repository without git:create: err %v, output:\n%s", err, out)
	}
	maker := f.gitEnv(t, "maker")
	mustGit(t, maker, work, "push", "-q", f.url("alice/new"), "main")
	list, err := f.srv.List(&core.Identity{ID: "x", Scopes: []string{git.ScopeRead}})
	if err != nil || len(list) != 1 || list[0].Name != "alice/new" {
		t.Errorf("List = %v, %v; want alice/new", list, err)
	}
	refs, err := f.srv.Refs(nil, "alice/new")
	if err == nil {
		t.Errorf("anonymous Refs of a private repository = %v, want not found", refs)
	}
}
