package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strings"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// Node types reported by [Store.Stat] and [Store.Ls].
const (
	TypeFile      = "file"
	TypeDirectory = "directory"
	TypeSymlink   = "symlink"
)

// Range selects bytes of a file: Length bytes from Offset. Length 0 means
// to the end of the file. A range past the end is cut at the end.
type Range struct {
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length,omitempty"`
}

// end returns the exclusive end of the range in a file of size bytes.
func (r Range) end(size uint64) uint64 {
	if r.Length == 0 || r.Offset+r.Length > size || r.Offset+r.Length < r.Offset {
		return size
	}
	return r.Offset + r.Length
}

// Stat describes a DAG.
type Stat struct {
	// CID is the root.
	CID string `json:"cid"`
	// Type is file, directory or symlink.
	Type string `json:"type"`
	// Size is the file's length in bytes; for a directory the sum of the
	// sizes of the files below it; for a symlink the target's length.
	Size uint64 `json:"size"`
	// Blocks is the number of distinct blocks of the DAG.
	Blocks int `json:"blocks"`
	// DAGBytes is the number of bytes in those blocks.
	DAGBytes int64 `json:"dagBytes"`
}

// Entry is one entry of a directory listing.
type Entry struct {
	// Name is the entry's name in the directory.
	Name string `json:"name"`
	// CID is the entry's root.
	CID string `json:"cid"`
	// Type is file, directory or symlink.
	Type string `json:"type"`
	// Size is the file size for a file, the target length for a symlink,
	// and 0 for a directory.
	Size uint64 `json:"size"`
}

// unixfsNode is a decoded block: its type and, for files and symlinks,
// the FSNode.
type unixfsNode struct {
	typ  string
	size uint64
	pn   *merkledag.ProtoNode // nil for a raw block
	fsn  *ft.FSNode           // nil for a raw block
	raw  []byte               // the data of a raw block
}

// decode interprets a block as a UnixFS node.
func decode(b blocks.Block) (unixfsNode, error) {
	switch b.Cid().Type() {
	case cid.Raw:
		return unixfsNode{typ: TypeFile, size: uint64(len(b.RawData())), raw: b.RawData()}, nil
	case cid.DagProtobuf:
		pn, err := merkledag.DecodeProtobuf(b.RawData())
		if err != nil {
			return unixfsNode{}, fmt.Errorf("block %s: decode dag-pb: %w", b.Cid(), err)
		}
		fsn, err := ft.FSNodeFromBytes(pn.Data())
		if err != nil {
			return unixfsNode{}, fmt.Errorf("block %s: decode unixfs: %w", b.Cid(), err)
		}
		n := unixfsNode{pn: pn, fsn: fsn}
		switch fsn.Type() {
		case pb.Data_File, pb.Data_Raw:
			n.typ, n.size = TypeFile, fsn.FileSize()
		case pb.Data_Directory, pb.Data_HAMTShard:
			n.typ = TypeDirectory
		case pb.Data_Symlink:
			n.typ, n.size = TypeSymlink, uint64(len(fsn.Data()))
		default:
			return unixfsNode{}, fmt.Errorf("block %s: unsupported unixfs type %s", b.Cid(), fsn.Type())
		}
		return n, nil
	default:
		return unixfsNode{}, fmt.Errorf("block %s: unsupported codec 0x%x", b.Cid(), b.Cid().Type())
	}
}

// node reads and decodes the block c.
func (s *Store) node(ctx context.Context, c cid.Cid) (blocks.Block, unixfsNode, error) {
	b, err := s.block(ctx, c)
	if err != nil {
		return nil, unixfsNode{}, err
	}
	n, err := decode(b)
	return b, n, err
}

// Cat writes the whole file at c to w.
func (s *Store) Cat(ctx context.Context, c cid.Cid, w io.Writer) (int64, error) {
	return s.ReadRange(ctx, c, Range{}, w)
}

// ReadRange writes the bytes of r of the file at c to w and returns how
// many it wrote. Only the blocks covering the range are read. A missing
// block is an error matching [ErrNotFound] that names it.
func (s *Store) ReadRange(ctx context.Context, c cid.Cid, r Range, w io.Writer) (int64, error) {
	var n int64
	err := s.fileRange(ctx, c, r, func(_ blocks.Block, data []byte) error {
		m, err := w.Write(data)
		n += int64(m)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("fs: read %s: %w", c, err)
	}
	return n, nil
}

// fileRange calls fn, depth-first, for every block of the file at c that
// the range needs, with the part of the block's own data inside the range.
func (s *Store) fileRange(ctx context.Context, c cid.Cid, r Range, fn func(b blocks.Block, data []byte) error) error {
	b, n, err := s.node(ctx, c)
	if err != nil {
		return err
	}
	if n.typ != TypeFile {
		return fmt.Errorf("%s is a %s, not a file", c, n.typ)
	}
	return s.fileNode(ctx, b, n, r.Offset, r.end(n.size), fn)
}

// fileNode handles one node of a file; lo and hi are relative to the
// node's content.
func (s *Store) fileNode(ctx context.Context, b blocks.Block, n unixfsNode, lo, hi uint64, fn func(blocks.Block, []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data := n.raw
	if n.fsn != nil {
		data = n.fsn.Data()
	}
	if err := fn(b, clip(data, lo, hi)); err != nil {
		return err
	}
	if n.pn == nil {
		return nil
	}
	ls := n.pn.Links()
	if len(ls) != n.fsn.NumChildren() {
		return fmt.Errorf("block %s: %d links but %d block sizes", b.Cid(), len(ls), n.fsn.NumChildren())
	}
	pos := uint64(len(data))
	for i, l := range ls {
		start, end := pos, pos+n.fsn.BlockSize(i)
		pos = end
		if end <= lo || start >= hi {
			continue
		}
		cb, cn, err := s.node(ctx, l.Cid)
		if err != nil {
			return err
		}
		if cn.typ != TypeFile {
			return fmt.Errorf("block %s: file child is a %s", l.Cid, cn.typ)
		}
		if err := s.fileNode(ctx, cb, cn, max(lo, start)-start, min(hi, end)-start, fn); err != nil {
			return err
		}
	}
	return nil
}

// clip returns data[lo:hi] cut to data's bounds.
func clip(data []byte, lo, hi uint64) []byte {
	n := uint64(len(data))
	lo, hi = min(lo, n), min(hi, n)
	if lo >= hi {
		return nil
	}
	return data[lo:hi]
}

// Resolve follows path ("a/b/c", slash-separated names) from root through
// UnixFS directories, basic or HAMT-sharded, and returns the CID it names.
// An empty path is root itself.
func (s *Store) Resolve(ctx context.Context, root cid.Cid, path string) (cid.Cid, error) {
	c, err := resolve(ctx, s.dag, root, path)
	if err != nil {
		return cid.Undef, fmt.Errorf("fs: resolve %s/%s: %w", root, path, err)
	}
	return c, nil
}

// resolve walks path through dag; it reads only the blocks on the way.
func resolve(ctx context.Context, dag ipld.DAGService, root cid.Cid, path string) (cid.Cid, error) {
	c := root
	for _, name := range strings.Split(strings.Trim(path, "/"), "/") {
		if name == "" {
			continue
		}
		nd, err := dag.Get(ctx, c)
		if err != nil {
			return cid.Undef, notFound(err)
		}
		dir, err := uio.NewDirectoryFromNode(dag, nd)
		if err != nil {
			return cid.Undef, fmt.Errorf("%q: parent is not a directory", name)
		}
		child, err := dir.Find(ctx, name)
		if errors.Is(err, os.ErrNotExist) {
			return cid.Undef, fmt.Errorf("%q: %w", name, ErrNotFound)
		}
		if err != nil {
			return cid.Undef, notFound(err)
		}
		c = child.Cid()
	}
	return c, nil
}

// notFound turns boxo's not-found error into a [MissingError].
func notFound(err error) error {
	var nf ipld.ErrNotFound
	if errors.As(err, &nf) {
		return &MissingError{CID: nf.Cid}
	}
	return err
}

// Ls lists the directory at c, in the directory's order.
func (s *Store) Ls(ctx context.Context, c cid.Cid) ([]Entry, error) {
	var out []Entry
	err := s.forEachEntry(ctx, c, func(name string, child cid.Cid) error {
		_, n, err := s.node(ctx, child)
		if err != nil {
			return err
		}
		out = append(out, Entry{Name: name, CID: child.String(), Type: n.typ, Size: n.size})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fs: ls %s: %w", c, err)
	}
	return out, nil
}

// forEachEntry calls fn for every entry of the directory at c.
func (s *Store) forEachEntry(ctx context.Context, c cid.Cid, fn func(name string, child cid.Cid) error) error {
	nd, err := s.dag.Get(ctx, c)
	if err != nil {
		return notFound(err)
	}
	dir, err := uio.NewDirectoryFromNode(s.dag, nd)
	if err != nil {
		return fmt.Errorf("%s is not a directory", c)
	}
	return notFound(dir.ForEachLink(ctx, func(l *ipld.Link) error { return fn(l.Name, l.Cid) }))
}

// Stat describes the DAG at c: its type, size, and the number and bytes of
// its distinct blocks. Every block must be present.
func (s *Store) Stat(ctx context.Context, c cid.Cid) (Stat, error) {
	st, err := s.walk(ctx, c, nil)
	if err != nil {
		return Stat{}, fmt.Errorf("fs: stat %s: %w", c, err)
	}
	typ, size, err := s.size(ctx, c, make(map[cid.Cid]uint64))
	if err != nil {
		return Stat{}, fmt.Errorf("fs: stat %s: %w", c, err)
	}
	return Stat{CID: c.String(), Type: typ, Size: size, Blocks: st.Blocks, DAGBytes: st.Bytes}, nil
}

// size returns the type of c and its size as Stat defines it. dirs holds
// the sizes of the directories already summed: a DAG may name one subtree
// many times (a "diamond" nests 2^n paths in n blocks), and each is summed
// once. The sum counts every path and saturates at the largest uint64.
func (s *Store) size(ctx context.Context, c cid.Cid, dirs map[cid.Cid]uint64) (string, uint64, error) {
	_, n, err := s.node(ctx, c)
	if err != nil {
		return "", 0, err
	}
	if n.typ != TypeDirectory {
		return n.typ, n.size, nil
	}
	if total, ok := dirs[c]; ok {
		return n.typ, total, nil
	}
	var total uint64
	err = s.forEachEntry(ctx, c, func(_ string, child cid.Cid) error {
		_, sz, err := s.size(ctx, child, dirs)
		if sum, carry := bits.Add64(total, sz, 0); carry == 0 {
			total = sum
		} else {
			total = math.MaxUint64
		}
		return err
	})
	if err == nil {
		dirs[c] = total
	}
	return n.typ, total, err
}
