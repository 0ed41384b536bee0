package fs

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/alkdev/alknet/core"
	"github.com/ipfs/boxo/verifcid"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	car "github.com/ipld/go-car/v2"
	"github.com/ipld/go-car/v2/storage"
	mh "github.com/multiformats/go-multihash"
	"github.com/multiformats/go-varint"
)

// MaxBlockBytes is the largest block a CAR reader accepts: 2 MiB, twice
// what IPFS nodes exchange, well above the 256 KiB chunks and the HAMT
// shards this store writes.
const MaxBlockBytes = 2 << 20

// maxRoots bounds the roots of a CAR header.
const maxRoots = 64

// maxHeaderBytes bounds a CAR's header.
const maxHeaderBytes = 64 << 10

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
	cw, err := newCARWriter(ctx, s, w, root, sel.Have)
	if err != nil {
		return TransferStats{}, fmt.Errorf("fs: export %s: %w", root, err)
	}
	if sel.Path == "" && sel.Range == nil {
		// The whole DAG: raw leaves go from their files to the stream
		// through one buffer.
		_, err = s.walkDAG(ctx, root, make(map[string]struct{}), false, cw.put, nil, cw.leaf)
	} else {
		err = s.exportSelection(ctx, root, sel, cw.put)
	}
	if err != nil {
		return cw.st, fmt.Errorf("fs: export %s: %w", root, err)
	}
	return cw.st, nil
}

// carWriter writes the sections of a CAR v1 stream, each with one Write:
// the section's length, CID and data in one buffer, reused from block to
// block. It writes what go-car's writer would: identity blocks are left
// out (their data is their CID), and a multihash goes out once.
type carWriter struct {
	ctx  context.Context
	s    *Store
	w    io.Writer
	skip map[cid.Cid]struct{} // the receiver holds these
	sent map[string]struct{}  // multihashes written
	buf  []byte
	st   TransferStats
}

// newCARWriter writes the header naming root.
func newCARWriter(ctx context.Context, s *Store, w io.Writer, root cid.Cid, have []cid.Cid) (*carWriter, error) {
	// go-car writes the header here; the sections are ours. Only w's Write
	// is shown to it: given a WriterAt (a file) it would write there with
	// WriteAt, leaving the file's offset for the sections at 0.
	if _, err := storage.NewWritable(struct{ io.Writer }{w}, []cid.Cid{root}, car.WriteAsCarV1(true)); err != nil {
		return nil, err
	}
	cw := &carWriter{ctx: ctx, s: s, w: w, skip: make(map[cid.Cid]struct{}, len(have)), sent: make(map[string]struct{})}
	for _, c := range have {
		cw.skip[c] = struct{}{}
	}
	return cw, nil
}

// sectionHead is room for a section's length and CID before its data.
const sectionHead = binary.MaxVarintLen64 + 128

// wants reports whether c is to be sent (new reports it is not one the
// receiver holds or that went before, so it counts as sent even if, as an
// identity block, it is not written), remembering it.
func (cw *carWriter) wants(c cid.Cid) (send, new bool, err error) {
	if _, ok := cw.skip[c]; ok {
		return false, false, nil
	}
	cw.skip[c] = struct{}{}
	if c.Prefix().MhType == mh.IDENTITY {
		return false, true, nil
	}
	if n := c.ByteLen(); n > car.DefaultMaxIndexCidSize {
		return false, false, &car.ErrCidTooLarge{MaxSize: car.DefaultMaxIndexCidSize, CurrentSize: uint64(n)}
	}
	if _, ok := cw.sent[string(c.Hash())]; ok {
		return false, true, nil
	}
	cw.sent[string(c.Hash())] = struct{}{}
	return true, true, nil
}

// put sends b unless the receiver holds it.
func (cw *carWriter) put(b blocks.Block) error {
	send, new, err := cw.wants(b.Cid())
	if !send {
		if new {
			cw.count(len(b.RawData()))
		}
		return err
	}
	cw.buf = slices.Grow(cw.buf[:0], sectionHead+len(b.RawData()))[:sectionHead+len(b.RawData())]
	copy(cw.buf[sectionHead:], b.RawData())
	return cw.write(b.Cid(), sectionHead)
}

// leaf sends the stored raw block c (not an identity block), read from
// its file into the buffer, and returns its size. A block the receiver
// holds is only sized.
func (cw *carWriter) leaf(c cid.Cid) (int, error) {
	send, new, err := cw.wants(c)
	if err != nil {
		return 0, err
	}
	if !send {
		n, err := cw.s.blockSize(cw.ctx, c)
		if new && err == nil {
			cw.count(n)
		}
		return n, err
	}
	if cw.buf, err = cw.s.files.read(c, cw.buf, sectionHead); err != nil {
		return 0, err
	}
	return len(cw.buf) - sectionHead, cw.write(c, sectionHead)
}

func (cw *carWriter) count(n int) {
	cw.st.Blocks++
	cw.st.Bytes += int64(n)
}

// write sends the section of c whose data is cw.buf[off:], writing its
// length and CID in the room before it.
func (cw *carWriter) write(c cid.Cid, off int) error {
	data := len(cw.buf) - off
	cb := c.Bytes()
	n := uint64(len(cb) + data)
	start := off - len(cb) - varint.UvarintSize(n)
	varint.PutUvarint(cw.buf[start:], n)
	copy(cw.buf[off-len(cb):], cb)
	if _, err := cw.w.Write(cw.buf[start:]); err != nil {
		return err
	}
	cw.count(data)
	return nil
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
	roots, st, err := s.receiveCAR(ctx, r, cid.Undef, nil, nil)
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
// blocks as they are verified. p, set for a peer's stream, takes CAR v1
// only (the protocol's) and reads it under the peer's limits; a local file
// (p nil) may be CAR v2 too.
func (s *Store) receiveCAR(ctx context.Context, r io.Reader, want cid.Cid, cat *catter, p *peerLimits) ([]cid.Cid, TransferStats, error) {
	var st TransferStats
	defer p.end()
	// Buffered, so the small reads (section lengths, the header) do not
	// each go to the stream; a block's data is read past the buffer.
	bufr := bufio.NewReaderSize(r, 64<<10)
	p.begin(maxHeaderBytes)
	br, err := car.NewBlockReader(bufr, car.WithTrustedCAR(true),
		car.MaxAllowedHeaderSize(maxHeaderBytes), car.MaxAllowedSectionSize(MaxBlockBytes+256))
	if err != nil {
		return nil, st, badRequest(fmt.Errorf("read CAR header: %w", tooSlow(err)))
	}
	roots := br.Roots
	switch {
	case p != nil && br.Version != 1:
		return nil, st, badRequest(fmt.Errorf("CAR v%d on a stream: the protocol carries CAR v1", br.Version))
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
	if br.Version == 1 {
		// go-car read just the header from bufr: the sections follow.
		err = v.readV1(ctx, bufr, roots, &st, p)
	} else {
		err = v.read(ctx, br, roots, &st)
	}
	if werr := v.w.close(); err == nil {
		err = werr
	}
	return roots, st, err
}

// read admits the roots, then verifies the stream's blocks in order and
// hands them to v.w.
func (v *verifier) read(ctx context.Context, br *car.BlockReader, roots []cid.Cid, st *TransferStats) error {
	if err := v.allowRoots(ctx, roots); err != nil {
		return err
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
		if _, err := v.accept(ctx, b, nil); err != nil {
			return err
		}
		st.Blocks++
		st.Bytes += int64(len(b.RawData()))
	}
}

func (v *verifier) allowRoots(ctx context.Context, roots []cid.Cid) error {
	for _, root := range roots {
		if err := v.allow(ctx, root); err != nil {
			return err
		}
	}
	return nil
}

// errSectionTooLarge is a CAR section over [MaxBlockBytes] and its CID.
var errSectionTooLarge = errors.New("section too large")

// readV1 is read for the sections of a CAR v1 stream, parsed here as
// go-car's reader does (a varint length, then the CID and the data): each
// goes into a buffer that the block writer hands back once the block is
// stored, and a block of 256 KiB is read from the stream with one copy.
func (v *verifier) readV1(ctx context.Context, r *bufio.Reader, roots []cid.Cid, st *TransferStats, p *peerLimits) error {
	if err := v.allowRoots(ctx, roots); err != nil {
		return err
	}
	fail := func(err error) error {
		return badRequest(fmt.Errorf("read CAR after %d blocks: %w", st.Blocks, tooSlow(err)))
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.begin(1)
		n, err := varint.ReadUvarint(r)
		switch {
		case errors.Is(err, io.EOF):
			st.Missing = len(v.want)
			return nil
		case err != nil:
			return fail(err)
		case n > MaxBlockBytes+256:
			return fail(errSectionTooLarge)
		case n == 0:
			return fail(errors.New("empty section"))
		}
		buf, err := v.w.readBuf(r, int(n), p)
		if errors.Is(err, core.ErrOverBudget) {
			return err
		}
		if err != nil {
			return fail(err)
		}
		m, c, err := cid.CidFromBytes(buf)
		if err != nil {
			return fail(err)
		}
		b, err := blocks.NewBlockWithCid(buf[m:], c)
		if err != nil {
			return fail(err)
		}
		took, err := v.accept(ctx, b, buf)
		if err != nil {
			return err
		}
		p.done()
		if !took {
			v.w.release(buf)
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
// buf, if not nil, is the writer's buffer holding b's data: took says the
// writer has it now (else it is the caller's again).
func (v *verifier) accept(ctx context.Context, b blocks.Block, buf []byte) (took bool, err error) {
	c := b.Cid()
	_, wanted := v.want[c]
	_, held := v.expanded[string(c.Hash())]
	if !wanted && !held {
		return false, &BlockError{CID: c, Reason: "unexpected: not linked from the blocks before it"}
	}
	if err := verifcid.ValidateCid(verifcid.DefaultAllowlist, c); err != nil {
		return false, &BlockError{CID: c, Reason: err.Error()}
	}
	sum, err := c.Prefix().Sum(b.RawData())
	if err != nil || !sum.Equals(c) {
		return false, &BlockError{CID: c, Reason: "data does not match its hash"}
	}
	if !wanted {
		return false, nil // a block the receiver holds already, sent again
	}
	ls, err := links(b)
	if err != nil {
		return false, &BlockError{CID: c, Reason: err.Error()}
	}
	if err := v.w.putBuf(b, buf); err != nil {
		return false, err
	}
	delete(v.want, c)
	v.expanded[string(c.Hash())] = struct{}{}
	// From here on b's data stays valid until the caller reads the next
	// block: the writer hands buf back only to it.
	for _, l := range ls {
		if err := v.allow(ctx, l); err != nil {
			return true, err
		}
	}
	if v.cat != nil {
		return true, v.cat.accepted(ctx, b)
	}
	return true, nil
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
