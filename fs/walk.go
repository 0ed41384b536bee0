package fs

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ipfs/boxo/ipld/merkledag"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	ipld "github.com/ipfs/go-ipld-format"
	mh "github.com/multiformats/go-multihash"
)

// links returns the CIDs a block links to, in link order. Only the codecs
// UnixFS uses are understood: raw (no links) and dag-pb.
func links(b blocks.Block) ([]cid.Cid, error) {
	switch b.Cid().Type() {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		nd, err := merkledag.DecodeProtobuf(b.RawData())
		if err != nil {
			return nil, fmt.Errorf("decode dag-pb: %w", err)
		}
		out := make([]cid.Cid, len(nd.Links()))
		for i, l := range nd.Links() {
			out[i] = l.Cid
		}
		return out, nil
	default:
		return nil, fmt.Errorf("unsupported codec 0x%x (want raw or dag-pb)", b.Cid().Type())
	}
}

// walkStats counts the distinct blocks of a DAG.
type walkStats struct {
	Blocks int
	Bytes  int64
}

// walk visits every distinct block below root (root included) depth-first,
// pre-order, children in link order. visit may be nil. A missing block is
// a [MissingError].
func (s *Store) walk(ctx context.Context, root cid.Cid, visit func(blocks.Block) error) (walkStats, error) {
	return s.walkDAG(ctx, root, make(map[string]struct{}), false, visit, nil, nil)
}

// walkMarked walks root, adding every visited block's multihash to marked
// and skipping blocks already there; skipMissing treats missing blocks as
// leaves instead of failing.
func (s *Store) walkMarked(ctx context.Context, root cid.Cid, marked map[string]struct{}, skipMissing bool) (walkStats, error) {
	return s.walkDAG(ctx, root, marked, skipMissing, nil, nil, nil)
}

// walkDAG is the depth-first walk behind walk and walkMarked. seen is keyed
// by multihash, as the blockstore is. found, if set, gets the CID of every
// block visited; without visit, raw blocks are not read. leaf, if set,
// takes the raw blocks (but identity ones) instead of visit: it reads them
// itself and returns their size.
func (s *Store) walkDAG(ctx context.Context, root cid.Cid, seen map[string]struct{}, skipMissing bool, visit func(blocks.Block) error, found func(cid.Cid), leaf func(cid.Cid) (int, error)) (walkStats, error) {
	var st walkStats
	stack := []cid.Cid{root}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		key := string(c.Hash())
		if _, ok := seen[key]; ok {
			continue
		}
		// A raw block has no links: without visit its size is all the
		// walk needs, and the store knows it without reading the data.
		var b blocks.Block
		var size int
		var err error
		rawLeaf := c.Type() == cid.Raw && c.Prefix().MhType != mh.IDENTITY
		if rawLeaf && leaf != nil {
			size, err = leaf(c)
		} else if visit == nil && rawLeaf {
			size, err = s.blockSize(ctx, c)
		} else if b, err = s.block(ctx, c); err == nil {
			size = len(b.RawData())
		}
		var missing *MissingError
		if skipMissing && errors.As(err, &missing) {
			continue
		}
		if err != nil {
			return st, err
		}
		seen[key] = struct{}{}
		st.Blocks++
		st.Bytes += int64(size)
		if found != nil {
			found(c)
		}
		if b == nil {
			continue // a raw leaf, sized only
		}
		if visit != nil {
			if err := visit(b); err != nil {
				return st, err
			}
		}
		ls, err := links(b)
		if err != nil {
			return st, fmt.Errorf("block %s: %w", c, err)
		}
		slices.Reverse(ls)
		stack = append(stack, ls...)
	}
	return st, nil
}

// blockSize returns the length of the stored block c without reading it; a
// missing block is a [MissingError].
func (s *Store) blockSize(ctx context.Context, c cid.Cid) (int, error) {
	n, err := s.blocks.GetSize(ctx, c)
	if ipld.IsNotFound(err) {
		return 0, &MissingError{CID: c}
	}
	if err != nil {
		return 0, fmt.Errorf("block %s: %w", c, err)
	}
	return n, nil
}
