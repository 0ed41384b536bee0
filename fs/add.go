package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
)

// ChunkSize is the fixed chunk size of imported files: 256 KiB, the
// default of `ipfs add`.
const ChunkSize = 256 << 10

// cidBuilder makes the CIDs of `ipfs add --cid-version 1`: CIDv1, dag-pb
// for interior nodes (raw for leaves), SHA2-256.
var cidBuilder = merkledag.V1CidPrefix()

// AddOptions tunes [Store.Add].
type AddOptions struct {
	// Hidden includes files and directories whose names start with a dot.
	// Default false, like `ipfs add -r` without --hidden.
	Hidden bool
	// Progress, if set, is called with the number of file bytes read so far
	// after each chunk. It runs in the adding goroutine.
	Progress func(done int64)
}

// Add imports a file, a directory (recursively) or a symlink found at path
// and returns its root CID, the one `ipfs add --cid-version 1 [-r]` computes
// for the same tree: raw leaves, 256 KiB fixed chunks, balanced layout, and
// UnixFS directories that switch to HAMT shards past 256 KiB of links.
// Blocks already in the store are not written again. The result is not
// pinned: pin it before a GC runs.
func (s *Store) Add(ctx context.Context, path string, opts AddOptions) (cid.Cid, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	info, err := os.Stat(path)
	if err != nil {
		return cid.Undef, fmt.Errorf("fs: add: %w", err)
	}
	a := newAdder(ctx, s, opts)
	nd, err := a.add(ctx, path, info)
	if werr := a.close(); err == nil {
		err = werr
	}
	if err != nil {
		return cid.Undef, fmt.Errorf("fs: add %q: %w", path, err)
	}
	return nd.Cid(), nil
}

// AddReader imports the bytes of r as one UnixFS file and returns its root
// CID (see [Store.Add]).
func (s *Store) AddReader(ctx context.Context, r io.Reader, opts AddOptions) (cid.Cid, error) {
	s.gc.RLock()
	defer s.gc.RUnlock()
	a := newAdder(ctx, s, opts)
	nd, err := a.file(ctx, r)
	if werr := a.close(); err == nil {
		err = werr
	}
	if err != nil {
		return cid.Undef, fmt.Errorf("fs: add: %w", err)
	}
	return nd.Cid(), nil
}

// adder holds the state of one import. Its blocks go to the store through
// dag, in batches written while the next chunks are read and hashed; close
// returns once they are all stored (and synced, unless the store has
// NoSync).
type adder struct {
	s    *Store
	dag  *batchDAG
	opts AddOptions
	done int64
}

// newAdder starts an import; the caller holds s.gc's read lock until
// close returned.
func newAdder(ctx context.Context, s *Store, opts AddOptions) *adder {
	return &adder{s: s, dag: &batchDAG{DAGService: s.dag, w: newBlockWriter(ctx, s, true)}, opts: opts}
}

// close stores the blocks still queued and returns the first store error.
func (a *adder) close() error { return a.dag.w.close() }

// batchDAG is the store's DAG service with Add queued to a blockWriter. A
// read first waits for the queued blocks, so it sees every block added.
type batchDAG struct {
	ipld.DAGService
	w *blockWriter
}

func (d *batchDAG) Add(_ context.Context, nd ipld.Node) error { return d.put(nd) }

func (d *batchDAG) AddMany(_ context.Context, nds []ipld.Node) error {
	for _, nd := range nds {
		if err := d.put(nd); err != nil {
			return err
		}
	}
	return nil
}

// put queues nd. A raw node is a file's leaf, whose data the adder's
// splitter read into a buffer of the writer (the builder keeps only its
// CID and size), so the buffer goes back to the writer once it is written.
func (d *batchDAG) put(nd ipld.Node) error {
	if nd.Cid().Type() == cid.Raw {
		return d.w.putBuf(nd, nd.RawData())
	}
	return d.w.put(nd)
}

func (d *batchDAG) Get(ctx context.Context, c cid.Cid) (ipld.Node, error) {
	if err := d.w.wait(); err != nil {
		return nil, err
	}
	return d.DAGService.Get(ctx, c)
}

func (d *batchDAG) GetMany(ctx context.Context, cs []cid.Cid) <-chan *ipld.NodeOption {
	if err := d.w.wait(); err != nil {
		out := make(chan *ipld.NodeOption, 1)
		out <- &ipld.NodeOption{Err: err}
		close(out)
		return out
	}
	return d.DAGService.GetMany(ctx, cs)
}

func (a *adder) add(ctx context.Context, path string, info os.FileInfo) (ipld.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case info.Mode().IsRegular():
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return a.file(ctx, f)
	case info.IsDir():
		return a.dir(ctx, path)
	case info.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return nil, err
		}
		data, err := ft.SymlinkData(target)
		if err != nil {
			return nil, err
		}
		nd := merkledag.NodeWithData(data)
		if err := nd.SetCidBuilder(cidBuilder); err != nil {
			return nil, err
		}
		return nd, a.dag.Add(ctx, nd)
	default:
		return nil, fmt.Errorf("%q: unsupported file type %s", path, info.Mode().Type())
	}
}

// file imports one file with the balanced layout.
func (a *adder) file(ctx context.Context, r io.Reader) (ipld.Node, error) {
	params := helpers.DagBuilderParams{
		Maxlinks:   helpers.DefaultLinksPerBlock,
		RawLeaves:  true,
		CidBuilder: cidBuilder,
		Dagserv:    a.dag,
	}
	if a.opts.Progress != nil {
		r = &progressReader{r: r, a: a}
	}
	db, err := params.New(&splitter{r: &ctxReader{ctx: ctx, r: r}, w: a.dag.w})
	if err != nil {
		return nil, err
	}
	return balanced.Layout(db)
}

// dir imports a directory, its entries in name order.
func (a *adder) dir(ctx context.Context, path string) (ipld.Node, error) {
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	d, err := uio.NewDirectory(a.dag, uio.WithCidBuilder(cidBuilder))
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !a.opts.Hidden && strings.HasPrefix(e.Name(), ".") {
			continue
		}
		p := filepath.Join(path, e.Name())
		info, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		child, err := a.add(ctx, p, info)
		if err != nil {
			return nil, err
		}
		if err := d.AddChild(ctx, e.Name(), child); err != nil {
			return nil, err
		}
	}
	nd, err := d.GetNode()
	if err != nil {
		return nil, err
	}
	return nd, a.dag.Add(ctx, nd)
}

// splitter cuts a file into ChunkSize chunks as boxo's size splitter does
// (the same chunks, so the same CIDs), reading each into a buffer of the
// block writer that a written leaf gave back.
type splitter struct {
	r   io.Reader
	w   *blockWriter
	err error
}

var _ chunker.Splitter = (*splitter)(nil)

func (s *splitter) Reader() io.Reader { return s.r }

func (s *splitter) NextBytes() ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	buf := s.w.getBuf(ChunkSize)
	n, err := io.ReadFull(s.r, buf)
	switch {
	case err == nil:
		return buf, nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.err = io.EOF
		return buf[:n], nil
	default:
		s.w.release(buf)
		return nil, err
	}
}

// progressReader reports the bytes read to AddOptions.Progress.
type progressReader struct {
	r io.Reader
	a *adder
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.a.done += int64(n)
	p.a.opts.Progress(p.a.done)
	return n, err
}

// ctxReader stops an import when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
