package fs

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/boxo/verifcid"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
)

// MaxBlockBytes is the largest block a CAR reader accepts: 2 MiB, twice
// what IPFS nodes exchange, well above the 256 KiB chunks and the HAMT
// shards this store writes.
const MaxBlockBytes = 2 << 20

// maxRoots bounds the roots of a CAR header.
const maxRoots = 64

// Selection says what part of a DAG an export carries.
type Selection struct {
	// Path, if set, is resolved from the root through UnixFS directories;
	// the blocks on the way are sent first, then the DAG the path names.
	Path string
	// Range, if set, sends only the blocks of that byte range of a file.
	Range *Range
	// Have lists blocks the receiver already holds: they are not sent, but
	// the walk still descends through them.
	Have []cid.Cid
}

// TransferStats counts the blocks a transfer moved.
type TransferStats struct {
	// Blocks is the number of blocks sent or received and stored.
	Blocks int `json:"blocks"`
	// Bytes is the number of block bytes sent or received.
	Bytes int64 `json:"bytes"`
	// Missing, on the receiving side, is the number of blocks the received
	// DAG links to that the stream did not carry and the store does not
	// hold: zero means the whole DAG below the root is now stored. (A
	// selection of a path or a range leaves the rest missing on purpose.)
	Missing int `json:"missing,omitempty"`
}

// ExportCAR writes a CAR v1 stream to w whose header names root and whose
// blocks are what sel selects, depth-first, each block once. Every block
// written is linked from one written or held (sel.Have) before it, which
// is what [Store.ImportCAR] checks.
func (s *Store) ExportCAR(ctx context.Context, root cid.Cid, sel Selection, w io.Writer) (TransferStats, error) {
	var st TransferStats
	out, err := storage.NewWritable(w, []cid.Cid{root}, car.WriteAsCarV1(true))
	if err != nil {
		return st, fmt.Errorf("fs: export %s: %w", root, err)
	}
	skip := make(map[cid.Cid]struct{}, len(sel.Have))
	for _, c := range sel.Have {
		skip[c] = struct{}{}
	}
	emit := func(b blocks.Block) error {
		if _, ok := skip[b.Cid()]; ok {
			return nil
		}
		skip[b.Cid()] = struct{}{}
		if err := out.Put(ctx, b.Cid().KeyString(), b.RawData()); err != nil {
			return err
		}
		st.Blocks++
		st.Bytes += int64(len(b.RawData()))
		return nil
	}
	err = s.exportSelection(ctx, root, sel, emit)
	if err != nil {
		return st, fmt.Errorf("fs: export %s: %w", root, err)
	}
	return st, nil
}

// exportSelection calls emit for the selected blocks in order.
func (s *Store) exportSelection(ctx context.Context, root cid.Cid, sel Selection, emit func(blocks.Block) error) error {
	target := root
	if sel.Path != "" {
		rec := &recordingDAG{DAGService: s.dag}
		var err error
		if target, err = resolve(ctx, rec, root, sel.Path); err != nil {
			return err
		}
		for _, nd := range rec.seen {
			b, err := blocks.NewBlockWithCid(nd.RawData(), nd.Cid())
			if err != nil {
				return err
			}
			if err := emit(b); err != nil {
				return err
			}
		}
	}
	if sel.Range != nil {
		return s.fileRange(ctx, target, *sel.Range, func(b blocks.Block, _ []byte) error { return emit(b) })
	}
	_, err := s.walk(ctx, target, emit)
	return err
}

// recordingDAG remembers, in order, the nodes a path resolution reads.
type recordingDAG struct {
	ipld.DAGService
	seen []ipld.Node
}

func (r *recordingDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	nd, err := r.DAGService.Get(ctx, c)
	if err == nil {
		r.seen = append(r.seen, nd)
	}
	return nd, err
}

func (r *recordingDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	out := make(chan *ipld.NodeOption, len(cs))
	for _, c := range cs {
		nd, err := r.Get(ctx, c)
		out <- &ipld.NodeOption{Node: nd, Err: err}
	}
	close(out)
	return out
}

// ImportCAR reads a CAR (v1, or v2 carrying v1 data) from r and stores its
// blocks, verifying each as it arrives: the data must hash to the CID
// (with an allowed hash function), and the block must be a root or linked
// from a block received or held before it. The first bad block stops the
// import with a [BlockError] naming it; nothing of it is stored, and the
// blocks verified before it stay (unpinned) so a retry resumes. When the
// stream ends, every root must be complete in the store.
func (s *Store) ImportCAR(ctx context.Context, r io.Reader) ([]cid.Cid, TransferStats, error) {
	roots, st, err := s.receiveCAR(ctx, r, cid.Undef, nil)
	if err != nil {
		return roots, st, fmt.Errorf("fs: import: %w", err)
	}
	for _, root := range roots {
		if _, err := s.walk(ctx, root, nil); err != nil {
			return roots, st, fmt.Errorf("fs: import: root %s incomplete: %w", root, err)
		}
	}
	return roots, st, nil
}

// receiveCAR reads and verifies a CAR stream into the store. If want is
// defined, the header must name exactly that root. GC leaves the roots
// alone while the stream is read. cat, if set, writes its file from the
// blocks as they are verified.
func (s *Store) receiveCAR(ctx context.Context, r io.Reader, want cid.Cid, cat *catter) ([]cid.Cid, TransferStats, error) {
	var st TransferStats
	br, err := car.NewBlockReader(r, car.WithTrustedCAR(true),
		car.MaxAllowedHeaderSize(64<<10), car.MaxAllowedSectionSize(MaxBlockBytes+256))
	if err != nil {
		return nil, st, badRequest(fmt.Errorf("read CAR header: %w", err))
	}
	roots := br.Roots
	switch {
	case len(roots) == 0 || len(roots) > maxRoots:
		return nil, st, badRequest(fmt.Errorf("CAR header names %d roots, want 1..%d", len(roots), maxRoots))
	case want.Defined() && (len(roots) != 1 || !roots[0].Equals(want)):
		return roots, st, badRequest(fmt.Errorf("CAR header names root %s, want %s", roots[0], want))
	}
	for _, root := range roots {
		defer s.protect(root)()
	}
	// The verified blocks are written in batches while the next ones
	// arrive; whatever ends the stream, those verified before it are
	// stored before the roots lose their protection, so a retry resumes.
	v := &verifier{s: s, w: newBlockWriter(ctx, s, false), cat: cat, want: make(map[cid.Cid]struct{}), expanded: make(map[string]struct{})}
	if cat != nil {
		cat.v = v
	}
	err = v.read(ctx, br, roots, &st)
	if werr := v.w.close(); err == nil {
		err = werr
	}
	return roots, st, err
}

// read admits the roots, then verifies the stream's blocks in order and
// hands them to v.w.
func (v *verifier) read(ctx context.Context, br *car.BlockReader, roots []cid.Cid, st *TransferStats) error {
	for _, root := range roots {
		if err := v.allow(ctx, root); err != nil {
			return err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		b, err := br.Next()
		if errors.Is(err, io.EOF) {
			st.Missing = len(v.want)
			return nil
		}
		if err != nil {
			return badRequest(fmt.Errorf("read CAR after %d blocks: %w", st.Blocks, err))
		}
		if err := v.accept(ctx, b); err != nil {
			return err
		}
		st.Blocks++
		st.Bytes += int64(len(b.RawData()))
	}
}

// verifier admits the blocks of a CAR stream: a block must be wanted (a
// root, or linked from a verified or held block) and hash to its CID.
type verifier struct {
	s        *Store
	w        *blockWriter // stores what is verified
	cat      *catter      // if set, gets every verified block
	want     map[cid.Cid]struct{}
	expanded map[string]struct{} // multihashes whose links are allowed
}

// accept verifies one block, stores it and allows its links. A block the
// store holds already and that is part of the DAG is verified and skipped.
func (v *verifier) accept(ctx context.Context, b blocks.Block) error {
	c := b.Cid()
	_, wanted := v.want[c]
	_, held := v.expanded[string(c.Hash())]
	if !wanted && !held {
		return &BlockError{CID: c, Reason: "unexpected: not linked from the blocks before it"}
	}
	if err := verifcid.ValidateCid(verifcid.DefaultAllowlist, c); err != nil {
		return &BlockError{CID: c, Reason: err.Error()}
	}
	sum, err := c.Prefix().Sum(b.RawData())
	if err != nil || !sum.Equals(c) {
		return &BlockError{CID: c, Reason: "data does not match its hash"}
	}
	if !wanted {
		return nil // a block the receiver holds already, sent again
	}
	ls, err := links(b)
	if err != nil {
		return &BlockError{CID: c, Reason: err.Error()}
	}
	if err := v.w.put(b); err != nil {
		return err
	}
	delete(v.want, c)
	v.expanded[string(c.Hash())] = struct{}{}
	for _, l := range ls {
		if err := v.allow(ctx, l); err != nil {
			return err
		}
	}
	if v.cat != nil {
		return v.cat.accepted(ctx, b)
	}
	return nil
}

// allow admits c: a block already in the store is expanded in place (its
// links are allowed in turn); a missing one is wanted from the stream.
func (v *verifier) allow(ctx context.Context, c cid.Cid) error {
	stack := []cid.Cid{c}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, ok := v.expanded[string(c.Hash())]; ok {
			continue
		}
		if c.Type() == cid.Raw {
			// No links: whether it is held is all there is to know.
			held, err := v.s.Has(ctx, c)
			if err != nil {
				return err
			}
			if held {
				v.expanded[string(c.Hash())] = struct{}{}
			} else {
				v.want[c] = struct{}{}
			}
			continue
		}
		b, err := v.s.block(ctx, c)
		var missing *MissingError
		if errors.As(err, &missing) {
			v.want[c] = struct{}{}
			continue
		}
		if err != nil {
			return err
		}
		v.expanded[string(c.Hash())] = struct{}{}
		ls, err := links(b)
		if err != nil {
			return fmt.Errorf("block %s: %w", c, err)
		}
		stack = append(stack, ls...)
	}
	return nil
}
