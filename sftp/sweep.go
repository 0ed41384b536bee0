package sftp

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// SweepPartials removes the upload temporary files (".NAME.upload-HEX.part",
// see the package doc) under root that were last modified before before,
// and returns how many it removed. An upload that ends normally leaves no
// such file; one that a crash (kill -9, power loss) interrupted leaves it
// behind, and nothing else would ever remove it.
//
// Only regular files of exactly that naming are touched; symbolic links
// are not followed. Give before as the time the process started (before any
// session could begin): a file modified earlier belongs to no upload of
// this process. An upload of another process writing under the same root
// keeps its file's modification time current, so only one stalled since
// before is removed. A missing root is not an error. Directories that
// cannot be read are skipped and reported in the joined error, after the
// rest of the tree has been swept. Safe to call concurrently with a
// [Server] serving sessions, with the caveat above.
func SweepPartials(root string, before time.Time) (int, error) {
	n := 0
	var errs []error
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && errors.Is(err, fs.ErrNotExist) {
				return filepath.SkipAll
			}
			errs = append(errs, err)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !isTempName(d.Name()) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		if !fi.ModTime().Before(before) {
			return nil
		}
		if err := os.Remove(path); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
			return nil
		}
		n++
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("sftp: sweep %q: %w", root, err)
	}
	return n, nil
}

// isTempName reports whether base is a name [tempName] makes:
// "." + target + ".upload-" + 16 lower-case hex digits + ".part".
func isTempName(base string) bool {
	rest, ok := strings.CutSuffix(base, ".part")
	if !ok || len(base) < 2 || base[0] != '.' {
		return false
	}
	const tag = ".upload-"
	if len(rest) < 1+1+len(tag)+16 {
		return false
	}
	hex := rest[len(rest)-16:]
	for i := 0; i < len(hex); i++ {
		if c := hex[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return strings.HasSuffix(rest[:len(rest)-16], tag)
}
