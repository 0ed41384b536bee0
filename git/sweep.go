package git

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SweepTemp removes the temporary files and directories that a push
// interrupted by a crash (kill -9, power loss) leaves in the repositories
// under root, and returns how many it removed. These are only names
// go-git and git create while receiving or repacking, which nothing else
// removes once their process is gone:
//
//   - objects/pack/tmp_* (tmp_pack_, tmp_idx_, tmp_rev_, tmp_obj_ ...) and
//     objects/pack/.tmp-* (git repack's packs before their rename);
//   - objects/tmp_obj_* and objects/XX/tmp_obj_* (loose objects being
//     written);
//   - objects/tmp_objdir-incoming-* and objects/incoming-* (git
//     receive-pack's quarantine directories, removed whole);
//   - ._packed-refs* (go-git's packed-refs being rewritten).
//
// Only entries last modified before before are removed. Give before as the
// time the process started, before any push could begin: then no entry of
// a push of this process is touched, and none of another process unless it
// stalled since before. Lock files (*.lock) are left alone. A missing root
// is not an error. Entries that cannot be read or removed are reported in
// the joined error after the rest has been swept.
func SweepTemp(root string, before time.Time) (int, error) {
	r := &repos{root: root}
	names, err := r.list()
	if err != nil {
		return 0, fmt.Errorf("git: sweep %q: %w", root, err)
	}
	sw := sweeper{before: before}
	for _, name := range names {
		sw.repo(r.dir(name))
	}
	if err := errors.Join(sw.errs...); err != nil {
		return sw.n, fmt.Errorf("git: sweep %q: %w", root, err)
	}
	return sw.n, nil
}

// sweeper collects what SweepTemp removed and what went wrong.
type sweeper struct {
	before time.Time
	n      int
	errs   []error
}

// repo sweeps one bare repository.
func (sw *sweeper) repo(dir string) {
	objects := filepath.Join(dir, "objects")
	sw.dir(dir, func(e fs.DirEntry) bool {
		return e.Type().IsRegular() && strings.HasPrefix(e.Name(), "._packed-refs")
	})
	sw.dir(objects, func(e fs.DirEntry) bool {
		name := e.Name()
		switch {
		case e.IsDir():
			return strings.HasPrefix(name, "tmp_objdir-incoming-") || strings.HasPrefix(name, "incoming-")
		case e.Type().IsRegular():
			return strings.HasPrefix(name, "tmp_obj_")
		}
		return false
	})
	sw.dir(filepath.Join(objects, "pack"), func(e fs.DirEntry) bool {
		name := e.Name()
		return e.Type().IsRegular() && (strings.HasPrefix(name, "tmp_") || strings.HasPrefix(name, ".tmp-"))
	})
	entries, err := os.ReadDir(objects)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			sw.errs = append(sw.errs, err)
		}
		return
	}
	for _, e := range entries {
		if e.IsDir() && isFanout(e.Name()) {
			sw.dir(filepath.Join(objects, e.Name()), func(e fs.DirEntry) bool {
				return e.Type().IsRegular() && strings.HasPrefix(e.Name(), "tmp_obj_")
			})
		}
	}
}

// dir removes the entries of dir that match and are older than before;
// directories go with all they hold.
func (sw *sweeper) dir(dir string, match func(fs.DirEntry) bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			sw.errs = append(sw.errs, err)
		}
		return
	}
	for _, e := range entries {
		if !match(e) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				sw.errs = append(sw.errs, err)
			}
			continue
		}
		if !fi.ModTime().Before(sw.before) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			err = os.RemoveAll(p)
		} else {
			err = os.Remove(p)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			sw.errs = append(sw.errs, err)
			continue
		}
		sw.n++
	}
}

// isFanout reports whether name is a loose-object directory: two
// lower-case hex digits.
func isFanout(name string) bool {
	return len(name) == 2 && isHex(name[0]) && isHex(name[1])
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
