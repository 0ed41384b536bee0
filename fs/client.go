package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/alkdev/alknet/core"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// Client talks alknet/fs to one node over a connection dialed with [ALPN],
// moving blocks between the node and a local store. Each call opens its own
// stream (over a single-stream connection, a connection of its own: see
// Redial); calls may run concurrently.
type Client struct {
	// Progress, if set, is called from the transfer's goroutine with the
	// bytes of a Get's or Put's block stream received or sent so far.
	Progress func(bytes int64)
	// Redial, if set, dials the node again: a single-stream connection
	// (TCP+TLS, a relayed one) carries one request, so each later request
	// gets a connection of its own. Nil: such a connection serves one
	// request. Set it before the first call.
	Redial func(context.Context) (core.Conn, error)

	conn        core.Conn
	store       *Store
	streamsOnce sync.Once
	streams     *core.Streams
}

// counted calls the client's Progress with the running byte count of
// each Read or Write.
type counted struct {
	r        io.Reader
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.add(n)
	return n, err
}

func (c *counted) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.add(n)
	return n, err
}

func (c *counted) add(n int) {
	if n > 0 {
		c.n += int64(n)
		c.progress(c.n)
	}
}

// NewClient returns a client on conn that reads and writes blocks in
// store. The caller keeps owning conn and store.
func NewClient(conn core.Conn, store *Store) *Client {
	return &Client{conn: conn, store: store}
}

// roundTrip opens a stream, sends req and returns the stream after reading
// the answer frame; the caller closes it.
func (c *Client) roundTrip(ctx context.Context, req Request, body func(core.Stream) error) (core.Stream, Response, error) {
	c.streamsOnce.Do(func() { c.streams = core.NewStreams(c.conn, c.Redial) })
	st, err := c.streams.Open(ctx)
	if err != nil {
		return nil, Response{}, fmt.Errorf("fs: open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { st.Abort(codeFailed) })
	defer stop()
	if err := writeFrame(st, req); err != nil {
		st.Abort(codeFailed)
		return nil, Response{}, fmt.Errorf("fs: send %s: %w", req.Op, err)
	}
	// Only a request with a body half-closes: over TCP+TLS a half-close
	// the node never reads (it reads one request frame) would sit unread
	// when the node closes, and the kernel would answer with a reset that
	// destroys the end of the answer before we read it.
	var sendErr error
	if body != nil {
		if sendErr = body(st); sendErr == nil {
			sendErr = st.CloseWrite()
		}
	}
	resp, err := readResponse(st)
	if err != nil {
		st.Abort(codeFailed)
		if ctx.Err() != nil {
			return nil, resp, ctx.Err()
		}
		if sendErr != nil && resp.Error == nil {
			return nil, resp, fmt.Errorf("fs: send %s: %w", req.Op, sendErr)
		}
		return nil, resp, err
	}
	return st, resp, nil
}

// Has asks which of cids the node holds (at most [MaxHasCIDs] per call).
func (c *Client) Has(ctx context.Context, cids []cid.Cid) ([]bool, error) {
	st, resp, err := c.roundTrip(ctx, Request{Op: OpHas, CIDs: cidStrings(cids)}, nil)
	if err != nil {
		return nil, err
	}
	_ = st.Close()
	if len(resp.Have) != len(cids) {
		return nil, fmt.Errorf("fs: has: %d answers for %d cids", len(resp.Have), len(cids))
	}
	return resp.Have, nil
}

// Stat describes the DAG at root/path on the node.
func (c *Client) Stat(ctx context.Context, root cid.Cid, path string) (Stat, error) {
	st, resp, err := c.roundTrip(ctx, Request{Op: OpStat, Root: root.String(), Path: path}, nil)
	if err != nil {
		return Stat{}, err
	}
	_ = st.Close()
	if resp.Stat == nil {
		return Stat{}, errors.New("fs: stat: empty answer")
	}
	return *resp.Stat, nil
}

// Get fetches what sel selects of root from the node into the local store
// and returns the CID the path names. Blocks the local store already holds
// below root are listed as have (sel.Have is filled here), so a retry of an
// interrupted get fetches only what is missing. Every block is verified as
// it arrives ([Store.ImportCAR]); at the end the selection must be complete
// locally, or the error names the first missing block.
func (c *Client) Get(ctx context.Context, root cid.Cid, sel Selection) (cid.Cid, TransferStats, error) {
	ts, err := c.get(ctx, root, sel, nil)
	if err != nil {
		return cid.Undef, ts, err
	}
	if sel.Path == "" && sel.Range == nil && ts.Missing == 0 {
		// The verifier followed every link below root: nothing missing
		// means the whole DAG is stored, without reading it back. (When
		// something is missing, the walk below names it.)
		return root, ts, nil
	}
	target, err := c.store.Resolve(ctx, root, sel.Path)
	if err != nil {
		return cid.Undef, ts, err
	}
	if sel.Range != nil {
		_, err = c.store.ReadRange(ctx, target, *sel.Range, io.Discard)
	} else {
		_, err = c.store.walk(ctx, target, nil)
	}
	if err != nil {
		return target, ts, fmt.Errorf("fs: get %s: incomplete: %w", root, err)
	}
	return target, ts, nil
}

// Cat is [Client.Get] of a file that also writes the file's bytes (those of
// sel.Range, if set) to w while they arrive: each block is written once it
// is verified, in the file's order, so nothing is read back from the store
// after the transfer. Blocks the store held already, or that the node sent
// out of order, are read from the store when their turn comes. On an error
// w holds a prefix of the selection, every byte of it verified, and
// written reports its length; the blocks verified are stored as by Get, so
// a retry moves only the rest.
func (c *Client) Cat(ctx context.Context, root cid.Cid, sel Selection, w io.Writer) (target cid.Cid, written int64, ts TransferStats, err error) {
	k := newCatter(c.store, w, root, sel)
	ts, err = c.get(ctx, root, sel, k)
	if err == nil {
		if err = k.finish(ctx); err != nil {
			err = fmt.Errorf("fs: get %s: incomplete: %w", root, err)
		}
	}
	return k.target, k.written, ts, err
}

// get lists what the local store holds below root, asks the node for the
// rest of sel and receives it, through cat if set.
func (c *Client) get(ctx context.Context, root cid.Cid, sel Selection, cat *catter) (TransferStats, error) {
	var have []cid.Cid
	marked := make(map[string]struct{})
	_, err := c.store.walkDAG(ctx, root, marked, true, nil, func(b cid.Cid) {
		if len(have) < MaxHave {
			have = append(have, b)
		}
	}, nil)
	if err != nil {
		return TransferStats{}, fmt.Errorf("fs: get %s: %w", root, err)
	}
	req := Request{Op: OpGet, Root: root.String(), Path: sel.Path, Range: sel.Range, Have: cidStrings(have)}
	st, _, err := c.roundTrip(ctx, req, nil)
	if err != nil {
		return TransferStats{}, err
	}
	var r io.Reader = st
	if c.Progress != nil {
		r = &counted{r: st, progress: c.Progress}
	}
	_, ts, err := c.store.receiveCAR(ctx, r, root, cat, newPeerLimits(r, core.FrameLimits{}))
	if err != nil {
		st.Abort(codeFailed)
		return ts, fmt.Errorf("fs: get %s: %w", root, err)
	}
	_ = st.Close()
	return ts, nil
}

// Put sends the DAG at root from the local store to the node, which
// verifies and stores it and, if pin is not empty, pins it under that name
// (needs fs:write). Blocks the node already holds are not sent: it is asked
// with has first.
func (c *Client) Put(ctx context.Context, root cid.Cid, pin string) (TransferStats, error) {
	var all []cid.Cid
	if _, err := c.store.walk(ctx, root, func(b blocks.Block) error {
		all = append(all, b.Cid())
		return nil
	}); err != nil {
		return TransferStats{}, fmt.Errorf("fs: put %s: %w", root, err)
	}
	var have []cid.Cid
	for i := 0; i < len(all); i += MaxHasCIDs {
		batch := all[i:min(i+MaxHasCIDs, len(all))]
		ok, err := c.Has(ctx, batch)
		if err != nil {
			return TransferStats{}, err
		}
		for j, h := range ok {
			if h {
				have = append(have, batch[j])
			}
		}
	}
	var sent TransferStats
	st, resp, err := c.roundTrip(ctx, Request{Op: OpPut, Root: root.String(), Pin: pin}, func(st core.Stream) error {
		var err error
		var w io.Writer = st
		if c.Progress != nil {
			w = &counted{w: st, progress: c.Progress}
		}
		sent, err = c.store.ExportCAR(ctx, root, Selection{Have: have}, w)
		return err
	})
	if err != nil {
		return sent, err
	}
	_ = st.Close()
	if resp.Root != root.String() {
		return sent, fmt.Errorf("fs: put: node stored %q, want %s", resp.Root, root)
	}
	return sent, nil
}
