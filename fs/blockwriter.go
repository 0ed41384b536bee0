package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	blocks "github.com/ipfs/go-block-format"
	mh "github.com/multiformats/go-multihash"
)

// writeBatchBytes is the size at which a blockWriter hands its batch to
// the writing goroutine: 4 MiB, sixteen 256 KiB chunks, which (with sync)
// two syncs of the file system make durable.
const writeBatchBytes = 4 << 20

// blockWriter stores verified blocks in batches from its own goroutine, so
// the caller hashes, decodes and receives the next blocks while the last
// ones reach the disk, and the store writes each batch at once
// ([blockFiles]: with sync, the batch is synced before its blocks are
// renamed into place and once after, instead of twice per block). It holds
// at most two batches, the one filling and the one being written, each at
// most writeBatchBytes plus one block.
//
// Blocks handed to put are durable (as the store's NoSync promises) only
// once wait or close returned without an error.
//
// The writer also keeps the buffers of the blocks it wrote for the next
// ones (getBuf, putBuf): a transfer or an import reads 256 KiB chunks
// into memory that is already mapped instead of allocating each anew,
// which cost the garbage collector, the scavenger and page faults a
// fifth of a get's CPU. At most freeBufs buffers wait there.
type blockWriter struct {
	s *Store
	// locked says the caller holds the store's GC read lock for the
	// writer's life (an add), so batches are written without taking it
	// again: a GC waiting for the lock would block a second reader.
	locked bool
	ctx    context.Context
	cur    []blocks.Block
	bufs   [][]byte // buffers of cur to reuse once it is written
	bytes  int
	free   chan []byte // written blocks' buffers, for getBuf
	reqs   chan writeReq
	done   chan struct{}
	failed atomic.Bool // a batch failed: put stops early
	err    error       // the first store error; the goroutine's, handed out by acks
	closed bool
}

// writeReq is a batch to store, or with blocks nil a barrier whose ack
// receives the writer's first error once every batch before it is stored.
type writeReq struct {
	blocks []blocks.Block
	bufs   [][]byte
	ack    chan error
}

// bufCap is the capacity of the buffers a writer recycles: a 256 KiB
// chunk, or a CAR section holding one (its CID and length come first).
const bufCap = ChunkSize + 1<<10

// freeBufs bounds the buffers waiting in a writer's free list (9 MiB):
// enough for the batch being filled while one is written. With blocks of
// at least half a buffer (getBuf), a batch's buffers take at most twice
// its data.
const freeBufs = 36

// newBlockWriter starts a writer into s; close ends it. locked says the
// caller holds s.gc's read lock until then.
func newBlockWriter(ctx context.Context, s *Store, locked bool) *blockWriter {
	w := &blockWriter{s: s, locked: locked, ctx: ctx, reqs: make(chan writeReq), done: make(chan struct{}),
		free: make(chan []byte, freeBufs)}
	go w.run()
	return w
}

func (w *blockWriter) run() {
	defer close(w.done)
	for req := range w.reqs {
		if req.blocks != nil && w.err == nil {
			if w.locked {
				w.err = w.s.putManyLocked(w.ctx, req.blocks)
			} else {
				w.err = w.s.putMany(w.ctx, req.blocks)
			}
			if w.err != nil {
				w.failed.Store(true)
			}
		}
		for _, b := range req.bufs {
			w.release(b)
		}
		if req.ack != nil {
			req.ack <- w.err
		}
	}
}

// getBuf returns a buffer of n bytes, one of the written blocks' if it
// fits. Only the goroutine putting blocks calls it. A block of less than
// half a buffer gets its own slice: a batch holds up to writeBatchBytes of
// data, and that many small blocks in whole buffers would take gigabytes.
func (w *blockWriter) getBuf(n int) []byte {
	if b := w.recycled(n); b != nil {
		return b
	}
	return make([]byte, n, bufCapFor(n))
}

// recycled returns one of the written blocks' buffers, cut to n bytes, if
// n fits one and one is free; else nil.
func (w *blockWriter) recycled(n int) []byte {
	if bufCapFor(n) != bufCap {
		return nil
	}
	select {
	case b := <-w.free:
		return b[:n]
	default:
		return nil
	}
}

// bufCapFor is the capacity getBuf gives a buffer of n bytes: a whole
// recyclable buffer if n is at least half of one.
func bufCapFor(n int) int {
	if n > bufCap || n < bufCap/2 {
		return n
	}
	return bufCap
}

// firstRead is the most readBuf allocates for a section before any of its
// bytes arrived.
const firstRead = 64 << 10

// readBuf reads n bytes from r into a buffer as getBuf would give it. A
// buffer not recycled grows with the bytes that arrive, doubling from
// [firstRead]: a peer that declares a large section and sends little of it
// makes the receiver allocate about what it sent (ARCHITECTURE.md §3.6),
// not the declared length. p charges each growth to the peer's budget and
// keeps the section arriving. A short stream is io.ErrUnexpectedEOF.
func (w *blockWriter) readBuf(r io.Reader, n int, p *peerLimits) ([]byte, error) {
	if buf := w.recycled(n); buf != nil {
		return buf, p.readFull(r, buf, 0)
	}
	size := min(n, firstRead)
	if err := p.charge(size); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, size)
	for len(buf) < n {
		if len(buf) == cap(buf) {
			next := min(2*cap(buf), n)
			if next == n {
				next = bufCapFor(n)
			}
			if err := p.charge(next - cap(buf)); err != nil {
				return nil, err
			}
			buf = append(make([]byte, 0, next), buf...)
		}
		part := buf[len(buf):min(cap(buf), n)]
		if err := p.readFull(r, part, len(buf)); err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+len(part)]
	}
	return buf, nil
}

// readFull is io.ReadFull, with a stream that ends before buf is full
// (even before its first byte) an io.ErrUnexpectedEOF.
func readFull(r io.Reader, buf []byte) error {
	_, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// release offers buf, which nothing uses any more, to getBuf.
func (w *blockWriter) release(buf []byte) {
	if cap(buf) != bufCap {
		return
	}
	select {
	case w.free <- buf[:0]:
	default:
	}
}

// put queues b. An error is the store's, from an earlier batch.
func (w *blockWriter) put(b blocks.Block) error { return w.putBuf(b, nil) }

// putBuf queues b, whose data lies in buf (from getBuf; nil if not):
// once b is written, buf goes back to getBuf, so the caller must not keep
// b's data beyond its next getBuf. An error is the store's, from an
// earlier batch; buf is then the caller's again.
func (w *blockWriter) putBuf(b blocks.Block, buf []byte) error {
	if w.failed.Load() {
		return w.wait()
	}
	if b.Cid().Prefix().MhType == mh.IDENTITY {
		w.release(buf)
		return nil
	}
	w.cur = append(w.cur, b)
	if buf != nil {
		w.bufs = append(w.bufs, buf)
	}
	w.bytes += len(b.RawData())
	if w.bytes < writeBatchBytes {
		return nil
	}
	return w.send(writeReq{})
}

// send hands the filling batch (if any) with req's ack to the goroutine.
func (w *blockWriter) send(req writeReq) error {
	req.blocks, req.bufs, w.cur, w.bufs, w.bytes = w.cur, w.bufs, nil, nil, 0
	if req.blocks == nil && req.ack == nil {
		return nil
	}
	w.reqs <- req
	if req.ack != nil {
		return <-req.ack
	}
	return nil
}

// wait stores everything put so far and returns the first store error.
func (w *blockWriter) wait() error {
	if w.closed {
		return w.err // the goroutine is done: it no longer writes it
	}
	return w.send(writeReq{ack: make(chan error, 1)})
}

// close stores everything put so far, ends the goroutine and returns the
// first store error. Later calls (and wait) return that error again; put
// must not follow it.
func (w *blockWriter) close() error {
	if w.closed {
		return w.err
	}
	err := w.wait()
	close(w.reqs)
	<-w.done
	w.closed = true
	return err
}

// putMany stores verified blocks, excluding GC for the duration.
func (s *Store) putMany(ctx context.Context, bs []blocks.Block) error {
	s.gc.RLock()
	defer s.gc.RUnlock()
	return s.putManyLocked(ctx, bs)
}

// putManyLocked is putMany for a caller holding s.gc's read lock.
func (s *Store) putManyLocked(_ context.Context, bs []blocks.Block) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		// flatfs refused writes after Close; the store's own writer must
		// too, or blocks would land in a directory another process may
		// have opened since.
		return errors.New("fs: store closed")
	}
	if err := s.writeBlocks(bs); err != nil {
		return fmt.Errorf("store %d blocks from %s: %w", len(bs), bs[0].Cid(), err)
	}
	return nil
}
