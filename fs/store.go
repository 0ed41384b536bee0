package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	flatfs "github.com/ipfs/go-ds-flatfs"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// Options configures [Open]. The zero value is the default.
type Options struct {
	// NoSync skips syncing the block files. Imports get faster; blocks
	// written just before a power loss may be lost (the store never holds
	// a torn block: files are renamed into place). Default false: blocks
	// are written in batches of up to 4 MiB, each synced before its files
	// are renamed into place and again after (one syncfs each on Linux,
	// which flushes the whole file system; elsewhere an fsync per file and
	// directory), so an add, or a transfer, has every block on disk when
	// it returns.
	NoSync bool
	// Logger receives lifecycle and GC messages; nil means slog.Default().
	Logger *slog.Logger
}

// Store is a content-addressed block store on disk: UnixFS DAGs built with
// boxo, blocks in a flatfs datastore under the store's directory, named pins
// and a mark-and-sweep garbage collector. All methods are safe for
// concurrent use.
type Store struct {
	dir   string
	ds    *flatfs.Datastore
	files *blockFiles // writes blocks into ds's directory in batches
	// writeBlocks stores a batch of verified blocks: files.write (tests
	// replace it to make the disk fail).
	writeBlocks func([]blocks.Block) error
	blocks      blockstore.Blockstore
	dag         ipld.DAGService
	log         *slog.Logger

	// gc excludes garbage collection (Lock) from writers (RLock): an add
	// holds it for its whole run because its root is known only at the end;
	// a transfer holds it per block and protects its root through inflight.
	gc sync.RWMutex

	mu       sync.Mutex
	pins     map[string]cid.Cid
	inflight map[cid.Cid]int
	closed   bool
}

// Open opens the store in dir (normally <data-dir>/fs), creating it if
// needed: blocks live in dir/blocks (flatfs, sharded by the next-to-last
// two characters of the key, as kubo does) and pins in dir/pins.json.
// Close releases it.
func Open(dir string, opts Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fs: open: empty directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fs: open %q: %w", dir, err)
	}
	pins, err := loadPins(filepath.Join(dir, pinsFile))
	if err != nil {
		return nil, fmt.Errorf("fs: open %q: %w", dir, err)
	}
	ds, err := flatfs.CreateOrOpen(filepath.Join(dir, "blocks"), shard, !opts.NoSync)
	if err != nil {
		return nil, fmt.Errorf("fs: open %q: %w", dir, err)
	}
	bs := blockstore.NewBlockstore(ds, blockstore.NoPrefix())
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	files := newBlockFiles(filepath.Join(dir, "blocks"), !opts.NoSync)
	return &Store{
		dir:         dir,
		ds:          ds,
		files:       files,
		writeBlocks: files.write,
		blocks:      bs,
		dag:         merkledag.NewDAGService(blockservice.New(bs, nil)),
		log:         log,
		pins:        pins,
		inflight:    make(map[cid.Cid]int),
	}, nil
}

// Close closes the datastore. Calls after Close fail; closing twice is a
// no-op.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.gc.Lock()
	defer s.gc.Unlock()
	if err := s.ds.Close(); err != nil {
		return fmt.Errorf("fs: close: %w", err)
	}
	if err := s.files.addToDiskUsage(); err != nil {
		return fmt.Errorf("fs: close: %w", err)
	}
	return nil
}

// Has reports whether the block c is in the store. Identity CIDs, whose
// data is the CID itself, are always present.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if c.Prefix().MhType == mh.IDENTITY {
		return true, nil
	}
	ok, err := s.blocks.Has(ctx, c)
	if err != nil {
		return false, fmt.Errorf("fs: has %s: %w", c, err)
	}
	return ok, nil
}

// block returns the block c; a missing block is an error wrapping
// [ErrNotFound] that names it.
func (s *Store) block(ctx context.Context, c cid.Cid) (blocks.Block, error) {
	if c.Prefix().MhType == mh.IDENTITY {
		dec, err := mh.Decode(c.Hash())
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", c, err)
		}
		return blocks.NewBlockWithCid(dec.Digest, c)
	}
	b, err := s.blocks.Get(ctx, c)
	if ipld.IsNotFound(err) {
		return nil, &MissingError{CID: c}
	}
	if err != nil {
		return nil, fmt.Errorf("block %s: %w", c, err)
	}
	return b, nil
}

// protect keeps root and what is stored below it from GC until the returned
// function runs; transfers call it for the root they write.
func (s *Store) protect(root cid.Cid) func() {
	s.mu.Lock()
	s.inflight[root]++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.inflight[root]--; s.inflight[root] <= 0 {
			delete(s.inflight, root)
		}
	}
}
