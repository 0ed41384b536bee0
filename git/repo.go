package git

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ErrNotFound is returned for a repository that does not exist, or that
// the caller may not see.
var ErrNotFound = errors.New("repository not found")

// ErrExists is returned when creating a repository that already exists.
var ErrExists = errors.New("repository already exists")

// repos manages the bare repositories under a root directory.
type repos struct {
	root   string
	branch string // DefaultBranch of new repositories

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per repository, serializing writes
}

// dir returns the directory of the canonical name.
func (r *repos) dir(name string) string {
	return filepath.Join(r.root, filepath.FromSlash(name)+".git")
}

// lock returns the write lock of the named repository.
func (r *repos) lock(name string) *sync.Mutex {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.locks == nil {
		r.locks = make(map[string]*sync.Mutex)
	}
	l, ok := r.locks[name]
	if !ok {
		l = new(sync.Mutex)
		r.locks[name] = l
	}
	return l
}

// exists reports whether the named repository exists.
func (r *repos) exists(name string) bool {
	fi, err := os.Stat(filepath.Join(r.dir(name), "HEAD"))
	return err == nil && fi.Mode().IsRegular()
}

// open returns the object and reference storage of an existing repository.
func (r *repos) open(name string) (*filesystem.Storage, error) {
	if !r.exists(name) {
		return nil, ErrNotFound
	}
	return filesystem.NewStorage(osfs.New(r.dir(name)), cache.NewObjectLRUDefault()), nil
}

// publicMarker is the file in a repository that marks it public, set by
// git/repos/create; like git daemon's git-daemon-export-ok.
const publicMarker = "alknet-public"

// public reports whether the named repository carries the public marker.
func (r *repos) public(name string) bool {
	_, err := os.Stat(filepath.Join(r.dir(name), publicMarker))
	return err == nil
}

// create makes an empty bare repository whose HEAD points at the default
// branch, marked public if asked. It fails with ErrExists if the
// repository is there already.
func (r *repos) create(name string, public bool) error {
	l := r.lock(name)
	l.Lock()
	defer l.Unlock()
	if r.exists(name) {
		return ErrExists
	}
	dir := r.dir(name)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	_, err := gogit.PlainInitWithOptions(dir, &gogit.PlainInitOptions{
		Bare:        true,
		InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(r.branch)},
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("init %q: %w", name, err)
	}
	if public {
		if err := os.WriteFile(filepath.Join(dir, publicMarker), nil, 0o600); err != nil {
			_ = os.RemoveAll(dir)
			return err
		}
	}
	return nil
}

// remove deletes the named repository and all it holds.
func (r *repos) remove(name string) error {
	l := r.lock(name)
	l.Lock()
	defer l.Unlock()
	if !r.exists(name) {
		return ErrNotFound
	}
	if err := os.RemoveAll(r.dir(name)); err != nil {
		return err
	}
	// An owner directory left empty goes too.
	if owner, _, ok := strings.Cut(name, "/"); ok {
		_ = os.Remove(filepath.Join(r.root, owner))
	}
	return nil
}

// list returns the canonical names of every repository, sorted.
func (r *repos) list() ([]string, error) {
	var names []string
	err := filepath.WalkDir(r.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == r.root {
				return filepath.SkipAll
			}
			return err
		}
		if !d.IsDir() || path == r.root {
			return nil
		}
		rel, err := filepath.Rel(r.root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if name, ok := strings.CutSuffix(rel, ".git"); ok {
			if validName(name) == nil && r.exists(name) {
				names = append(names, name)
			}
			return filepath.SkipDir
		}
		if strings.Contains(rel, "/") {
			return filepath.SkipDir
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}
