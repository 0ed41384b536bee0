package fs

import (
	"context"
	"errors"
	"fmt"
	"io"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// catter writes a file's bytes to w while its blocks arrive: the stream
// sends them depth-first, which is the file's order, so each verified block
// is written as it comes, and the bytes are not read back from the store.
// It follows the file as [Store.fileNode] does (a stack of the blocks still
// to write, each with the part of its content inside the range); a block
// the stream skipped (the receiver held it) or sent out of order is read
// from the store once it is there. It only ever writes blocks the verifier
// accepted or the store held, in the file's order, so a failed transfer
// leaves a prefix of the file in w, never a byte that was not verified.
type catter struct {
	s    *Store
	v    *verifier
	w    io.Writer
	root cid.Cid
	path string
	rng  Range

	target  cid.Cid // the file, once the path is resolved
	waitFor cid.Cid // the block the path's resolution lacks
	stack   []catFrame
	written int64
}

// catFrame is a block of the file still to write: the part [lo, hi) of its
// content (its own data, then its children's). top marks the file's root,
// whose range comes from the file's size.
type catFrame struct {
	c      cid.Cid
	lo, hi uint64
	top    bool
}

func newCatter(s *Store, w io.Writer, root cid.Cid, sel Selection) *catter {
	k := &catter{s: s, w: w, root: root, path: sel.Path}
	if sel.Range != nil {
		k.rng = *sel.Range
	}
	if sel.Path == "" {
		k.setTarget(root)
	}
	return k
}

func (k *catter) setTarget(c cid.Cid) {
	k.target = c
	k.stack = append(k.stack, catFrame{c: c, top: true})
}

// accepted is the verifier's hook: b was verified and queued to the store.
// It writes what b and the blocks already at hand let it.
func (k *catter) accepted(ctx context.Context, b blocks.Block) error {
	if !k.target.Defined() {
		if k.waitFor.Defined() && !k.waitFor.Equals(b.Cid()) {
			return nil
		}
		if err := k.resolve(ctx, false); err != nil || !k.target.Defined() {
			return err
		}
	}
	return k.advance(ctx, b, false)
}

// resolve tries to resolve the path with the blocks stored so far; done
// says the stream ended, so a missing block is an error.
func (k *catter) resolve(ctx context.Context, done bool) error {
	if err := k.v.w.wait(); err != nil {
		return err
	}
	c, err := resolve(ctx, k.s.dag, k.root, k.path)
	var missing *MissingError
	if !done && errors.As(err, &missing) {
		k.waitFor = missing.CID
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve %s/%s: %w", k.root, k.path, err)
	}
	k.setTarget(c)
	return nil
}

// advance writes blocks from the top of the stack while they are at hand:
// b (just verified), or one the store holds or the stream brought before.
// done says the stream ended: every block still needed must be stored.
func (k *catter) advance(ctx context.Context, b blocks.Block, done bool) error {
	for len(k.stack) > 0 {
		f := k.stack[len(k.stack)-1]
		var blk blocks.Block
		switch {
		case b != nil && f.c.Equals(b.Cid()):
			blk = b
		case done || k.at(f.c):
			if err := k.v.w.wait(); err != nil {
				return err
			}
			var err error
			if blk, err = k.s.block(ctx, f.c); err != nil {
				return err
			}
		default:
			return nil // not here yet
		}
		k.stack = k.stack[:len(k.stack)-1]
		if err := k.write(blk, f); err != nil {
			return err
		}
	}
	return nil
}

// at reports whether c is stored or verified and queued: the verifier
// expanded it. (Without a verifier, after the stream, everything is
// looked up in the store.)
func (k *catter) at(c cid.Cid) bool {
	_, ok := k.v.expanded[string(c.Hash())]
	return ok
}

// write writes f's own bytes and pushes its children inside the range.
func (k *catter) write(b blocks.Block, f catFrame) error {
	n, err := decode(b)
	if err != nil {
		return err
	}
	if n.typ != TypeFile {
		if f.top {
			return fmt.Errorf("%s is a %s, %w", b.Cid(), n.typ, ErrNotFile)
		}
		return fmt.Errorf("block %s: file child is a %s", b.Cid(), n.typ)
	}
	lo, hi := f.lo, f.hi
	if f.top {
		lo, hi = k.rng.Offset, k.rng.end(n.size)
	}
	data := n.raw
	if n.fsn != nil {
		data = n.fsn.Data()
	}
	if part := clip(data, lo, hi); len(part) > 0 {
		m, err := k.w.Write(part)
		k.written += int64(m)
		if err != nil {
			return err
		}
	}
	if n.pn == nil {
		return nil
	}
	ls := n.pn.Links()
	if len(ls) != n.fsn.NumChildren() {
		return fmt.Errorf("block %s: %d links but %d block sizes", b.Cid(), len(ls), n.fsn.NumChildren())
	}
	// Children in reverse, so the first is on top.
	ends := make([]uint64, len(ls))
	pos := uint64(len(data))
	for i := range ls {
		pos += n.fsn.BlockSize(i)
		ends[i] = pos
	}
	for i := len(ls) - 1; i >= 0; i-- {
		start, end := ends[i]-n.fsn.BlockSize(i), ends[i]
		if end <= lo || start >= hi {
			continue
		}
		k.stack = append(k.stack, catFrame{c: ls[i].Cid, lo: max(lo, start) - start, hi: min(hi, end) - start})
	}
	return nil
}

// finish writes what the stream did not bring in order, from the store,
// after the stream ended; a block still missing is a [MissingError].
func (k *catter) finish(ctx context.Context) error {
	if !k.target.Defined() {
		if err := k.resolve(ctx, true); err != nil {
			return err
		}
	}
	return k.advance(ctx, nil, true)
}
