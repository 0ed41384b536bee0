// Command release tags alknet modules: each module is versioned on its own
// and tagged "<dir>/vX.Y.Z". scripts/release runs it; see docs/releasing.md.
//
//	scripts/release [--dry-run] [--bump-dependents] MODULE VERSION [MODULE VERSION ...]
//	scripts/release --plan
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/semver"
)

// modulePrefix is the module path prefix of every alknet module.
const modulePrefix = "github.com/alkdev/alknet/"

func main() {
	var opts options
	flag.BoolVar(&opts.dryRun, "dry-run", false, "show the plan; change nothing, run no tests")
	flag.BoolVar(&opts.bump, "bump-dependents", false, "rewrite the require lines of modules that use a released one, and commit that")
	plan := flag.Bool("plan", false, "list every module, its last tag and whether it changed since")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: scripts/release [--dry-run] [--bump-dependents] MODULE VERSION [MODULE VERSION ...]\n       scripts/release --plan")
		flag.PrintDefaults()
	}
	flag.Parse()
	root, err := gitOut(".", "rev-parse", "--show-toplevel")
	if err == nil {
		r := &repo{root: root, out: os.Stdout}
		if *plan {
			err = r.plan()
		} else {
			err = r.release(flag.Args(), opts)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

type options struct {
	dryRun bool
	bump   bool
}

// repo is the monorepo being released.
type repo struct {
	root string
	out  io.Writer
}

// module is one module of the workspace.
type module struct {
	dir  string // relative to the root, e.g. "core" or "alknet/bench"
	path string // module path
	reqs map[string]string
}

// modules reads the modules listed in go.work.
func (r *repo) modules() ([]*module, error) {
	data, err := os.ReadFile(filepath.Join(r.root, "go.work"))
	if err != nil {
		return nil, err
	}
	wf, err := modfile.ParseWork("go.work", data, nil)
	if err != nil {
		return nil, err
	}
	var mods []*module
	for _, u := range wf.Use {
		m, err := r.readModule(filepath.Clean(u.Path))
		if err != nil {
			return nil, err
		}
		mods = append(mods, m)
	}
	return mods, nil
}

func (r *repo) readModule(dir string) (*module, error) {
	f, err := r.modFile(dir)
	if err != nil {
		return nil, err
	}
	m := &module{dir: dir, path: f.Module.Mod.Path, reqs: map[string]string{}}
	for _, req := range f.Require {
		if strings.HasPrefix(req.Mod.Path, modulePrefix) {
			m.reqs[strings.TrimPrefix(req.Mod.Path, modulePrefix)] = req.Mod.Version
		}
	}
	return m, nil
}

func (r *repo) modFile(dir string) (*modfile.File, error) {
	name := filepath.Join(r.root, dir, "go.mod")
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return modfile.Parse(name, data, nil)
}

// lastTag returns the highest "<dir>/vX.Y.Z" tag of a module, or "".
func (r *repo) lastTag(dir string) (string, error) {
	out, err := gitOut(r.root, "tag", "--list", dir+"/v*")
	if err != nil {
		return "", err
	}
	last := ""
	for _, tag := range strings.Fields(out) {
		v := strings.TrimPrefix(tag, dir+"/")
		if semver.IsValid(v) && (last == "" || semver.Compare(v, last) > 0) {
			last = v
		}
	}
	return last, nil
}

func (r *repo) tagged(dir, version string) bool {
	_, err := gitOut(r.root, "rev-parse", "--verify", "--quiet", "refs/tags/"+dir+"/"+version)
	return err == nil
}

// plan prints every module, its last tag and whether it changed since.
func (r *repo) plan() error {
	mods, err := r.modules()
	if err != nil {
		return err
	}
	// Every module's zip must carry both license files: a missing one
	// fails the plan, after the table, naming each gap.
	var missing []error
	fmt.Fprintf(r.out, "%-14s %-12s %s\n", "MODULE", "LAST TAG", "SINCE")
	for _, m := range mods {
		last, err := r.lastTag(m.dir)
		if err != nil {
			return err
		}
		state := "never released"
		if last != "" {
			state = "unchanged"
			if _, err := gitOut(r.root, "diff", "--quiet", m.dir+"/"+last, "HEAD", "--", m.dir); err != nil {
				state = "changed"
			}
		} else {
			last = "-"
		}
		fmt.Fprintf(r.out, "%-14s %-12s %s\n", m.dir, last, state)
		if err := r.checkLicenses(m.dir); err != nil {
			missing = append(missing, err)
		}
	}
	return errors.Join(missing...)
}

// licenses are the files every module carries (MIT OR Apache-2.0), each
// recognized by a line of its standard text.
var licenses = []struct{ file, marker string }{
	{"LICENSE-MIT", "Permission is hereby granted, free of charge"},
	{"LICENSE-APACHE", "Apache License"},
}

// checkLicenses reports every license file missing from a module
// directory, or not holding its license's text.
func (r *repo) checkLicenses(dir string) error {
	var errs []error
	for _, l := range licenses {
		name := filepath.Join(dir, l.file)
		data, err := os.ReadFile(filepath.Join(r.root, name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			errs = append(errs, fmt.Errorf("%s is missing: every module carries LICENSE-MIT and LICENSE-APACHE (copy the root's)", name))
		case err != nil:
			errs = append(errs, err)
		case !bytes.Contains(data, []byte(l.marker)):
			errs = append(errs, fmt.Errorf("%s does not hold the standard text (no %q)", name, l.marker))
		}
	}
	return errors.Join(errs...)
}

// step is one module to release.
type step struct {
	mod     *module
	version string
}

// release checks and tags each MODULE VERSION pair of args, in dependency
// order.
func (r *repo) release(args []string, opts options) error {
	if len(args) == 0 || len(args)%2 != 0 {
		return errors.New("want MODULE VERSION pairs (or --plan); see --help")
	}
	mods, err := r.modules()
	if err != nil {
		return err
	}
	byDir := map[string]*module{}
	for _, m := range mods {
		byDir[m.dir] = m
	}
	releasing := map[string]string{}
	var steps []step
	for i := 0; i < len(args); i += 2 {
		dir, version := strings.TrimSuffix(args[i], "/"), args[i+1]
		m := byDir[dir]
		if m == nil {
			return fmt.Errorf("%s is not a module of go.work", dir)
		}
		if !semver.IsValid(version) || semver.Canonical(version) != version {
			return fmt.Errorf("%s: version %q is not semver of the form vMAJOR.MINOR.PATCH", dir, version)
		}
		last, err := r.lastTag(dir)
		if err != nil {
			return err
		}
		if last != "" && semver.Compare(version, last) <= 0 {
			return fmt.Errorf("%s: %s is not greater than the last tag %s/%s", dir, version, dir, last)
		}
		if err := r.checkLicenses(dir); err != nil {
			return err
		}
		if _, dup := releasing[dir]; dup {
			return fmt.Errorf("%s named twice", dir)
		}
		releasing[dir] = version
		steps = append(steps, step{m, version})
	}
	if out, err := gitOut(r.root, "status", "--porcelain"); err != nil || out != "" {
		if err == nil {
			err = fmt.Errorf("the work tree has uncommitted changes:\n%s", out)
		}
		return err
	}
	steps, err = dependencyOrder(steps)
	if err != nil {
		return err
	}
	for _, s := range steps {
		notes, err := r.changelog(s.mod.dir, s.version)
		if err != nil {
			return err
		}
		if err := r.checkRequires(s.mod, releasing, opts.bump); err != nil {
			return err
		}
		if opts.dryRun {
			fmt.Fprintf(r.out, "would test %s: GOWORK=off go test ./... (in %s)\n", s.mod.path, s.mod.dir)
			fmt.Fprintf(r.out, "would tag %s/%s:\n%s\n", s.mod.dir, s.version, indent(notes))
		} else {
			if err := r.test(s.mod.dir); err != nil {
				return err
			}
			msg := fmt.Sprintf("%s %s\n\n%s", s.mod.dir, s.version, notes)
			if _, err := gitOut(r.root, "tag", "--annotate", "--message", msg, s.mod.dir+"/"+s.version); err != nil {
				return err
			}
			fmt.Fprintf(r.out, "tagged %s/%s\n", s.mod.dir, s.version)
		}
		if opts.bump {
			if err := r.bumpDependents(mods, s, opts.dryRun); err != nil {
				return err
			}
		}
	}
	if !opts.dryRun {
		tags := make([]string, len(steps))
		for i, s := range steps {
			tags[i] = s.mod.dir + "/" + s.version
		}
		branch, _ := gitOut(r.root, "rev-parse", "--abbrev-ref", "HEAD")
		fmt.Fprintf(r.out, "to publish:\n  git push origin %s %s\n", branch, strings.Join(tags, " "))
	}
	return nil
}

// dependencyOrder sorts steps so that a module comes after the alknet
// modules it requires.
func dependencyOrder(steps []step) ([]step, error) {
	var ordered []step
	done := map[string]bool{}
	for len(ordered) < len(steps) {
		progress := false
		for _, s := range steps {
			if done[s.mod.dir] {
				continue
			}
			ready := true
			for dep := range s.mod.reqs {
				if !done[dep] && slices.ContainsFunc(steps, func(o step) bool { return o.mod.dir == dep }) {
					ready = false
				}
			}
			if ready {
				ordered = append(ordered, s)
				done[s.mod.dir] = true
				progress = true
			}
		}
		if !progress {
			return nil, errors.New("the modules named require each other in a cycle")
		}
	}
	return ordered, nil
}

// checkRequires refuses a module that requires a sibling at an untagged
// version, unless that sibling is released in this run and its dependents
// are bumped.
func (r *repo) checkRequires(m *module, releasing map[string]string, bump bool) error {
	var errs []error
	for dep, v := range m.reqs {
		if r.tagged(dep, v) {
			continue
		}
		if _, ok := releasing[dep]; ok && bump {
			continue // bumped to the new tag before m is tagged
		}
		errs = append(errs, fmt.Errorf("%s requires %s %s, which is not tagged %s/%s: release %s first (in this run with --bump-dependents, or bump %s/go.mod to a tagged version)", m.dir, dep, v, dep, v, dep, m.dir))
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// bumpDependents rewrites the require lines naming the released module and
// commits the change.
func (r *repo) bumpDependents(mods []*module, s step, dryRun bool) error {
	var changed []string
	for _, m := range mods {
		if _, ok := m.reqs[s.mod.dir]; !ok || m.reqs[s.mod.dir] == s.version {
			continue
		}
		if dryRun {
			fmt.Fprintf(r.out, "would bump %s in %s/go.mod: %s => %s\n", s.mod.dir, m.dir, m.reqs[s.mod.dir], s.version)
			m.reqs[s.mod.dir] = s.version
			continue
		}
		f, err := r.modFile(m.dir)
		if err != nil {
			return err
		}
		if err := f.AddRequire(s.mod.path, s.version); err != nil {
			return err
		}
		data, err := f.Format()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(r.root, m.dir, "go.mod"), data, 0o644); err != nil {
			return err
		}
		m.reqs[s.mod.dir] = s.version
		changed = append(changed, filepath.Join(m.dir, "go.mod"))
	}
	if len(changed) == 0 {
		return nil
	}
	if _, err := gitOut(r.root, append([]string{"add", "--"}, changed...)...); err != nil {
		return err
	}
	_, err := gitOut(r.root, "commit", "--quiet", "--message", fmt.Sprintf("%s: require %s %s", strings.Join(dirsOf(changed), ", "), s.mod.dir, s.version))
	return err
}

func dirsOf(files []string) []string {
	dirs := make([]string, len(files))
	for i, f := range files {
		dirs[i] = filepath.Dir(f)
	}
	return dirs
}

// changelog returns the notes of version from the module's CHANGELOG.md
// (Keep a Changelog: a "## [X.Y.Z]" or "## [vX.Y.Z]" section).
func (r *repo) changelog(dir, version string) (string, error) {
	name := filepath.Join(dir, "CHANGELOG.md")
	data, err := os.ReadFile(filepath.Join(r.root, name))
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	heading := regexp.MustCompile(`^## \[v?` + regexp.QuoteMeta(strings.TrimPrefix(version, "v")) + `\]`)
	var notes []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case heading.MatchString(line):
			in = true
		case in && strings.HasPrefix(line, "## "):
			in = false
		case in:
			notes = append(notes, line)
		}
	}
	text := strings.TrimSpace(strings.Join(notes, "\n"))
	if text == "" {
		return "", fmt.Errorf("%s has no notes under \"## [%s] - %s\": move the Unreleased entries there first", name, strings.TrimPrefix(version, "v"), time.Now().Format(time.DateOnly))
	}
	return text, nil
}

// test runs the module's tests on its own go.mod, outside the workspace.
func (r *repo) test(dir string) error {
	cmd := exec.Command("go", "test", "./...")
	cmd.Dir = filepath.Join(r.root, dir)
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: tests failed: %w", dir, err)
	}
	return nil
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// gitOut runs git in dir and returns its trimmed output.
func gitOut(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
