package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipfs/go-cid"
)

// Bounds of [Store.Export] when its options leave them zero.
const (
	// DefaultExportMaxEntries bounds the files and directories one export
	// writes: a DAG that names one subtree many times (a small DAG, a
	// huge tree) stops there.
	DefaultExportMaxEntries = 1 << 20
	// DefaultExportMaxDepth bounds the directory nesting: 2048 levels, as
	// many as the shortest names fit in a Linux path.
	DefaultExportMaxDepth = 2048
)

// ErrExportLimit is returned by [Store.Export] when the DAG is deeper,
// larger or has more entries than the export's bounds.
var ErrExportLimit = errors.New("fs: export: over the limit")

// ExportOptions tunes [Store.Export].
type ExportOptions struct {
	// MaxEntries bounds the files and directories written, the root
	// included; 0 means DefaultExportMaxEntries.
	MaxEntries int
	// MaxDepth bounds the nesting of directories below the root; 0 means
	// DefaultExportMaxDepth.
	MaxDepth int
	// MaxBytes bounds the file bytes written; 0 means no bound.
	MaxBytes int64
	// Skipped, if set, is called for each entry Export does not write (a
	// symlink, or a type it does not know) with its path, dst joined with
	// the entry's names, and its type.
	Skipped func(path, typ string)
}

// Export writes the DAG at root to the new file or directory dst, as
// `ipfs get` does: a file becomes a file, a directory a directory tree.
// Entry names come from the DAG, which may be hostile, so Export
//   - refuses a name that is not one plain path element ("", ".", "..", a
//     name with a separator or NUL) and two entries of one name;
//   - creates dst and everything below it new (an existing file or
//     symlink of the same name is an error, never written through) and
//     works inside dst through an [os.Root], so no path leaves it;
//   - writes no symlinks (they are reported to opts.Skipped);
//   - stops at opts' bounds with [ErrExportLimit].
//
// On an error a file being written is removed; what was written before
// stays.
func (s *Store) Export(ctx context.Context, root cid.Cid, dst string, opts ExportOptions) error {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultExportMaxEntries
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultExportMaxDepth
	}
	_, n, err := s.node(ctx, root)
	if err != nil {
		return fmt.Errorf("fs: export %s: %w", root, err)
	}
	e := exporter{s: s, ctx: ctx, opts: opts, dst: dst}
	switch n.typ {
	case TypeFile:
		err = e.file(root, dst, func(name string) (*os.File, error) {
			return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		}, os.Remove)
	case TypeDirectory:
		err = e.root(root)
	default:
		err = fmt.Errorf("the root is a %s, not a file or directory", n.typ)
	}
	if err != nil {
		return fmt.Errorf("fs: export %s to %s: %w", root, dst, err)
	}
	return nil
}

// exporter is one run of [Store.Export].
type exporter struct {
	s       *Store
	ctx     context.Context
	opts    ExportOptions
	dst     string
	dir     *os.Root
	entries int
	bytes   int64
}

// root makes the directory dst and writes the directory c into it.
func (e *exporter) root(c cid.Cid) error {
	if err := e.count(); err != nil {
		return err
	}
	if err := os.Mkdir(e.dst, 0o755); err != nil {
		return err
	}
	dir, err := os.OpenRoot(e.dst)
	if err != nil {
		return err
	}
	defer dir.Close()
	e.dir = dir
	return e.tree(c, ".", 0)
}

// count charges one entry.
func (e *exporter) count() error {
	e.entries++
	if e.entries > e.opts.MaxEntries {
		return fmt.Errorf("%w: more than %d entries", ErrExportLimit, e.opts.MaxEntries)
	}
	return nil
}

// child is one entry of a directory being exported.
type child struct {
	name string
	cid  cid.Cid
}

// tree writes the entries of the directory c into rel, a directory of
// e.dir that exists, at depth below the root.
func (e *exporter) tree(c cid.Cid, rel string, depth int) error {
	var kids []child
	seen := make(map[string]struct{})
	err := e.s.forEachEntry(e.ctx, c, func(name string, cc cid.Cid) error {
		if !validName(name) {
			return fmt.Errorf("%s: refusing entry name %.64q", e.show(rel), name)
		}
		if _, dup := seen[name]; dup {
			return fmt.Errorf("%s: two entries named %.64q", e.show(rel), name)
		}
		seen[name] = struct{}{}
		kids = append(kids, child{name, cc})
		return e.ctx.Err()
	})
	if err != nil {
		return err
	}
	for _, k := range kids {
		p := filepath.Join(rel, k.name)
		_, n, err := e.s.node(e.ctx, k.cid)
		if err != nil {
			return fmt.Errorf("%s: %w", e.show(p), err)
		}
		switch n.typ {
		case TypeDirectory:
			if depth+1 > e.opts.MaxDepth {
				return fmt.Errorf("%w: directories nested deeper than %d", ErrExportLimit, e.opts.MaxDepth)
			}
			if err := e.count(); err != nil {
				return err
			}
			if err := e.dir.Mkdir(p, 0o755); err != nil {
				return err
			}
			if err := e.tree(k.cid, p, depth+1); err != nil {
				return err
			}
		case TypeFile:
			if err := e.count(); err != nil {
				return err
			}
			err := e.file(k.cid, p, func(name string) (*os.File, error) {
				return e.dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			}, e.dir.Remove)
			if err != nil {
				return err
			}
		default:
			if e.opts.Skipped != nil {
				e.opts.Skipped(e.show(p), n.typ)
			}
		}
	}
	return nil
}

// file writes the file c to the new file name, made by create; on an
// error it removes the file with remove.
func (e *exporter) file(c cid.Cid, name string, create func(string) (*os.File, error), remove func(string) error) error {
	f, err := create(name)
	if err != nil {
		return err
	}
	w := io.Writer(f)
	if e.opts.MaxBytes > 0 {
		w = &capWriter{w: f, written: &e.bytes, max: e.opts.MaxBytes}
	}
	_, err = e.s.Cat(e.ctx, c, w)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = remove(name)
		return fmt.Errorf("%s: %w", e.show(name), err)
	}
	return nil
}

// show is the path of rel as the caller named it: below dst.
func (e *exporter) show(rel string) string {
	if e.dir == nil {
		return rel // the root itself, a file named dst
	}
	return filepath.Join(e.dst, rel)
}

// maxNameBytes is the longest entry name Export writes: NAME_MAX on Linux,
// macOS and the BSDs. UnixFS sets no limit; a longer name is refused by
// the DAG check with the other bad names instead of failing half-way at
// the file system.
const maxNameBytes = 255

// validName reports whether name is one plain path element: not empty,
// "." or "..", without a separator or NUL, at most maxNameBytes long.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= maxNameBytes &&
		!strings.ContainsAny(name, "/\x00") &&
		filepath.Base(name) == name && filepath.IsLocal(name)
}

// capWriter counts the bytes written to w against max, shared by the
// files of an export.
type capWriter struct {
	w       io.Writer
	written *int64 // by the whole export so far
	max     int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	if *c.written+int64(len(p)) > c.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrExportLimit, c.max)
	}
	n, err := c.w.Write(p)
	*c.written += int64(n)
	return n, err
}
