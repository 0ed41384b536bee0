package git

import (
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// walker finds the objects a fetch sends.
type walker struct {
	sto *filesystem.Storage
	// clientShallow are the commits the client has without their parents.
	clientShallow map[plumbing.Hash]bool
	// shallow and unshallow are what a deepen request makes of the
	// client's shallow boundary; boundary holds every commit at the
	// requested depth, whose parents are not sent.
	shallow, unshallow []plumbing.Hash
	boundary           map[plumbing.Hash]bool
	unshallowSet       map[plumbing.Hash]bool
}

// isCommit reports whether h is a commit in the repository.
func (w *walker) isCommit(h plumbing.Hash) bool {
	o, err := w.sto.EncodedObject(plumbing.AnyObject, h)
	return err == nil && o.Type() == plumbing.CommitObject
}

// wantCommits peels the wanted objects: annotated tags are sent and
// followed to their target; commits come back for the history walk;
// trees and blobs are added to objs.
func (w *walker) wantCommits(wants []plumbing.Hash, add func(plumbing.Hash), trees *[]plumbing.Hash) ([]plumbing.Hash, error) {
	var commits []plumbing.Hash
	for _, h := range wants {
	peel:
		for range 16 {
			o, err := w.sto.EncodedObject(plumbing.AnyObject, h)
			if err != nil {
				return nil, fmt.Errorf("want %s: %w", h, err)
			}
			switch o.Type() {
			case plumbing.TagObject:
				add(h)
				tag, err := object.DecodeTag(w.sto, o)
				if err != nil {
					return nil, err
				}
				h = tag.Target
				continue
			case plumbing.CommitObject:
				commits = append(commits, h)
			case plumbing.TreeObject:
				*trees = append(*trees, h)
			default:
				add(h)
			}
			break peel
		}
	}
	return commits, nil
}

// deepen computes the shallow boundary of a fetch limited to depth
// commits from each want.
func (w *walker) deepen(wants []plumbing.Hash, depth int) error {
	w.boundary = make(map[plumbing.Hash]bool)
	w.unshallowSet = make(map[plumbing.Hash]bool)
	var trees []plumbing.Hash
	commits, err := w.wantCommits(wants, func(plumbing.Hash) {}, &trees)
	if err != nil {
		return err
	}
	seen := make(map[plumbing.Hash]bool)
	level := commits
	for d := 1; len(level) > 0 && d <= depth; d++ {
		var next []plumbing.Hash
		for _, h := range level {
			if seen[h] {
				continue
			}
			seen[h] = true
			c, err := object.GetCommit(w.sto, h)
			if err != nil {
				return fmt.Errorf("commit %s: %w", h, err)
			}
			if d == depth {
				if len(c.ParentHashes) > 0 {
					w.boundary[h] = true
					if !w.clientShallow[h] {
						w.shallow = append(w.shallow, h)
					}
				}
				continue
			}
			if w.clientShallow[h] {
				w.unshallowSet[h] = true
				w.unshallow = append(w.unshallow, h)
			}
			next = append(next, c.ParentHashes...)
		}
		level = next
	}
	return nil
}

// objects lists every object reachable from wants that the client lacks:
// history stops at commits reachable from common (which the client has)
// and at the shallow boundary of a deepen request. Trees of the common
// commits are not resent.
func (w *walker) objects(wants, common []plumbing.Hash, depth int) ([]plumbing.Hash, error) {
	have, err := w.haveCommits(common)
	if err != nil {
		return nil, err
	}
	excluded := make(map[plumbing.Hash]bool)
	for _, h := range common {
		c, err := object.GetCommit(w.sto, h)
		if err != nil {
			return nil, err
		}
		if err := w.walkTree(c.TreeHash, excluded, nil); err != nil {
			return nil, err
		}
	}
	var objs, trees []plumbing.Hash
	add := func(h plumbing.Hash) { objs = append(objs, h) }
	queue, err := w.wantCommits(wants, add, &trees)
	if err != nil {
		return nil, err
	}
	seen := make(map[plumbing.Hash]bool)
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if seen[h] {
			continue
		}
		seen[h] = true
		c, err := object.GetCommit(w.sto, h)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", h, err)
		}
		if have[h] {
			if w.unshallowSet[h] {
				queue = append(queue, c.ParentHashes...)
			}
			continue
		}
		add(h)
		trees = append(trees, c.TreeHash)
		if depth > 0 && w.boundary[h] {
			continue
		}
		queue = append(queue, c.ParentHashes...)
	}
	for _, t := range trees {
		if err := w.walkTree(t, excluded, add); err != nil {
			return nil, err
		}
	}
	return objs, nil
}

// haveCommits returns every commit reachable from common, not walking past
// the client's shallow commits.
func (w *walker) haveCommits(common []plumbing.Hash) (map[plumbing.Hash]bool, error) {
	have := make(map[plumbing.Hash]bool)
	queue := append([]plumbing.Hash(nil), common...)
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if have[h] {
			continue
		}
		c, err := object.GetCommit(w.sto, h)
		if err != nil {
			continue // beyond the server's own shallow history
		}
		have[h] = true
		if !w.clientShallow[h] {
			queue = append(queue, c.ParentHashes...)
		}
	}
	return have, nil
}

// walkTree marks the tree h and everything below it in seen, calling add
// (if not nil) for each object not seen before. Submodule entries are
// skipped: their commits live in another repository.
func (w *walker) walkTree(h plumbing.Hash, seen map[plumbing.Hash]bool, add func(plumbing.Hash)) error {
	if seen[h] {
		return nil
	}
	seen[h] = true
	if add != nil {
		add(h)
	}
	t, err := object.GetTree(w.sto, h)
	if err != nil {
		return fmt.Errorf("tree %s: %w", h, err)
	}
	for _, e := range t.Entries {
		switch e.Mode {
		case filemode.Submodule:
		case filemode.Dir:
			if err := w.walkTree(e.Hash, seen, add); err != nil {
				return err
			}
		default:
			if !seen[e.Hash] {
				seen[e.Hash] = true
				if add != nil {
					add(e.Hash)
				}
			}
		}
	}
	return nil
}
