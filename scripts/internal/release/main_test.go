package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// clone makes a throwaway clone of this repository's HEAD, with release
// notes for the versions the tests release.
func clone(t *testing.T) *repo {
	t.Helper()
	src, err := gitOut(".", "rev-parse", "--show-toplevel")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := gitOut(".", "clone", "--quiet", "--no-local", src, dir); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct{ dir, version string }{{"core", "9.9.9"}, {"core", "10.0.0"}, {"call", "0.1.0"}} {
		f, err := os.OpenFile(filepath.Join(dir, m.dir, "CHANGELOG.md"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("\n## [" + m.version + "] - 2026-11-26\n### Added\n- release test " + m.version + "\n")
		f.Close()
	}
	if _, err := gitOut(dir, "-c", "user.name=t", "-c", "user.email=t@invalid", "commit", "--quiet", "--all", "--message", "notes"); err != nil {
		t.Fatal(err)
	}
	return &repo{root: dir}
}

func (r *repo) run(args []string, opts options) (string, error) {
	var out bytes.Buffer
	r.out = &out
	err := r.release(args, opts)
	return out.String(), err
}

func TestDryRunPlan(t *testing.T) {
	r := clone(t)
	out, err := r.run([]string{"core", "v9.9.9"}, options{dryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"would test github.com/alkdev/alknet/core", "would tag core/v9.9.9", "- release test 9.9.9"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	if tags, _ := gitOut(r.root, "tag"); tags != "" {
		t.Errorf("a dry run made tags: %s", tags)
	}
}

func TestRefusals(t *testing.T) {
	r := clone(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"core", "9.9.9"}, "not semver"},
		{[]string{"nope", "v1.0.0"}, "not a module"},
		{[]string{"call", "v0.1.0"}, "call requires core v0.0.0, which is not tagged"},
	} {
		if _, err := r.run(tc.args, options{dryRun: true}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}

	// Not greater than the last tag.
	if _, err := gitOut(r.root, "tag", "core/v9.9.9"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.run([]string{"core", "v9.9.9"}, options{dryRun: true}); err == nil || !strings.Contains(err.Error(), "not greater than the last tag core/v9.9.9") {
		t.Errorf("same version: got %v", err)
	}
	if _, err := r.run([]string{"core", "v1.0.0"}, options{dryRun: true}); err == nil || !strings.Contains(err.Error(), "not greater") {
		t.Errorf("lower version: got %v", err)
	}

	// A dirty tree.
	os.WriteFile(filepath.Join(r.root, "core", "stray.txt"), []byte("x"), 0o644)
	if _, err := r.run([]string{"core", "v10.0.0"}, options{dryRun: true}); err == nil || !strings.Contains(err.Error(), "uncommitted changes") {
		t.Errorf("dirty tree: got %v", err)
	}
}

func TestReleaseInDependencyOrder(t *testing.T) {
	r := clone(t)
	// Named dependent first: core must still be tagged first, and call's
	// require bumped before call is checked.
	out, err := r.run([]string{"call", "v0.1.0", "core", "v10.0.0"}, options{dryRun: true, bump: true})
	if err != nil {
		t.Fatal(err)
	}
	core, bump, call := strings.Index(out, "would tag core/v10.0.0"), strings.Index(out, "would bump core in call/go.mod: v0.0.0 => v10.0.0"), strings.Index(out, "would tag call/v0.1.0")
	if core < 0 || bump < core || call < bump {
		t.Errorf("want core tagged, then call's require bumped, then call tagged:\n%s", out)
	}
}

func TestPlan(t *testing.T) {
	r := clone(t)
	var out bytes.Buffer
	r.out = &out
	gitOut(r.root, "tag", "vault/v0.1.0")
	if err := r.plan(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "vault          v0.1.0       unchanged") || !strings.Contains(out.String(), "core           -            never released") {
		t.Errorf("plan:\n%s", out.String())
	}
}

func TestPlanChecksLicenses(t *testing.T) {
	r := clone(t)
	r.out = io.Discard
	if err := r.plan(); err != nil {
		t.Fatalf("plan of the repository as committed: %v", err)
	}
	for _, f := range []string{"fs/LICENSE-MIT", "alknet/bench/LICENSE-APACHE"} {
		if err := os.Remove(filepath.Join(r.root, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.root, "core", "LICENSE-MIT"), []byte("all rights reserved\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r.out = &out
	err := r.plan()
	if err == nil {
		t.Fatalf("plan passed with license files missing:\n%s", out.String())
	}
	for _, want := range []string{"fs/LICENSE-MIT is missing", "alknet/bench/LICENSE-APACHE is missing", "core/LICENSE-MIT does not hold the standard text"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("plan error lacks %q:\n%v", want, err)
		}
	}
	if !strings.Contains(out.String(), "vault") {
		t.Errorf("plan printed no table before failing:\n%s", out.String())
	}
	if _, err := r.run([]string{"fs", "v0.1.0"}, options{dryRun: true}); err == nil || !strings.Contains(err.Error(), "fs/LICENSE-MIT is missing") {
		t.Errorf("release of a module without LICENSE-MIT: got %v", err)
	}
}
