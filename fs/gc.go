package fs

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
)

// GCResult says what a garbage collection removed.
type GCResult struct {
	// Removed is the number of blocks deleted.
	Removed int `json:"removed"`
	// Freed is the number of block bytes deleted.
	Freed int64 `json:"freedBytes"`
	// Kept is the number of blocks left.
	Kept int `json:"kept"`
}

// GC deletes every block that is not reachable from a pin or from the root
// of a transfer in progress (mark and sweep). Adds and block writes wait
// while it runs. Missing blocks below a transfer's root are expected and
// skipped; a missing block below a pin is an error, and nothing is deleted.
func (s *Store) GC(ctx context.Context) (GCResult, error) {
	s.gc.Lock()
	defer s.gc.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return GCResult{}, errors.New("fs: gc: store closed")
	}
	pinned := make([]cid.Cid, 0, len(s.pins))
	for _, c := range s.pins {
		pinned = append(pinned, c)
	}
	partial := make([]cid.Cid, 0, len(s.inflight))
	for c := range s.inflight {
		partial = append(partial, c)
	}
	s.mu.Unlock()

	marked := make(map[string]struct{})
	for _, root := range pinned {
		if _, err := s.walkMarked(ctx, root, marked, false); err != nil {
			return GCResult{}, fmt.Errorf("fs: gc: %w", err)
		}
	}
	for _, root := range partial {
		if _, err := s.walkMarked(ctx, root, marked, true); err != nil {
			return GCResult{}, fmt.Errorf("fs: gc: %w", err)
		}
	}

	keys, err := s.blocks.AllKeysChan(ctx)
	if err != nil {
		return GCResult{}, fmt.Errorf("fs: gc: %w", err)
	}
	var res GCResult
	var sweepErr error
	for c := range keys {
		if sweepErr != nil {
			continue // drain the channel
		}
		if _, ok := marked[string(c.Hash())]; ok {
			res.Kept++
			continue
		}
		size, err := s.blocks.GetSize(ctx, c)
		if err != nil {
			sweepErr = err
			continue
		}
		if err := s.blocks.DeleteBlock(ctx, c); err != nil {
			sweepErr = err
			continue
		}
		res.Removed++
		res.Freed += int64(size)
	}
	if sweepErr == nil {
		sweepErr = ctx.Err()
	}
	if sweepErr != nil {
		return res, fmt.Errorf("fs: gc: %w", sweepErr)
	}
	s.log.Info("fs gc done", "removed", res.Removed, "freed_bytes", res.Freed, "kept", res.Kept)
	return res, nil
}
