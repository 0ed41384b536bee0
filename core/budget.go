package core

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// ErrOverBudget is returned by [FrameLimits.ReadBody] when the bytes of a
// frame would take its connection or the node past its in-flight budget.
// The frame is refused, not the node: the handler answers with its
// protocol's "busy" error and drops the stream (or the connection).
var ErrOverBudget = errors.New("core: in-flight byte budget exhausted")

// ErrFrameTooSlow is returned by [FrameLimits.ReadBody] when a frame that
// has started does not arrive at the minimum rate. It matches
// os.ErrDeadlineExceeded too.
var ErrFrameTooSlow = fmt.Errorf("core: frame arrived too slowly: %w", os.ErrDeadlineExceeded)

// Budget bounds the bytes that readers of network input hold at once, as a
// flow-control window bounds what a peer may send. A connection's budget
// charges its pool's as well, so the pool bounds all its connections
// together. A nil *Budget is unlimited. Safe for concurrent use.
type Budget struct {
	mu     sync.Mutex
	limit  int64
	used   int64
	parent *Budget
}

// NewBudget returns a budget of limit bytes whose charges also go to parent
// (nil: none). A limit <= 0 is unlimited (only parent bounds it).
func NewBudget(limit int64, parent *Budget) *Budget {
	return &Budget{limit: limit, parent: parent}
}

// TryAcquire charges n bytes to b and every budget above it, all or none.
// It reports false, charging nothing, if any of them would exceed its
// limit.
func (b *Budget) TryAcquire(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit > 0 && b.used+n > b.limit {
		return false
	}
	if !b.parent.TryAcquire(n) {
		return false
	}
	b.used += n
	return true
}

// Release returns n bytes charged by TryAcquire.
func (b *Budget) Release(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.parent.Release(n)
}

// Used returns the bytes charged to b now.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// move makes b a budget of limit bytes under parent, carrying its current
// charge over: a connection whose caller authenticated moves from the
// anonymous pool to the known one. The new pool takes the charge even past
// its limit (the bytes are already held).
func (b *Budget) move(limit int64, parent *Budget) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.parent == parent {
		b.limit = limit
		return
	}
	b.parent.Release(b.used)
	parent.force(b.used)
	b.limit, b.parent = limit, parent
}

// force charges n bytes to b and its parents regardless of their limits.
func (b *Budget) force(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used += n
	b.parent.force(n)
}

// FrameLimits bound the reading of one frame body of a length-prefixed
// protocol (call, msg, fs), as http.MaxBytesReader and ReadHeaderTimeout
// bound a request: memory grows with the bytes received, never with the
// length the peer declared, and a frame that has started must keep arriving.
// The zero value reads without a budget or deadline.
type FrameLimits struct {
	// Budget is charged as the body's buffer grows and released when
	// ReadBody returns; nil is unlimited.
	Budget *Budget
	// Grace is how long a started frame may take before the minimum rate
	// applies; 0 means no deadline at all.
	Grace time.Duration
	// MinRate is the average bytes per second a frame must arrive at after
	// Grace: the k-th byte must have arrived by Grace + k/MinRate. 0 means
	// only Grace bounds the frame.
	MinRate int64
	// HeaderBytes is the size of a frame's length prefix in
	// [FrameLimits.ReadFrame] and [FrameLimits.AppendFrame]: 0 means
	// [FrameHeaderBytes] (4, the call, msg and fs protocols); 2 is DNS
	// over TCP, TLS and QUIC (RFC 1035 §4.2.2, RFC 7858, RFC 9250). Other
	// values are an error.
	HeaderBytes int
}

// frameChunk is the first buffer of a body and the smallest read.
const frameChunk = 4 << 10

// deadliner is a reader with a read deadline: a [Stream], a net.Conn.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// ReadBody reads the n-byte body of a frame whose header has just arrived.
// Its buffer starts small and doubles as bytes arrive (up to n), each growth
// charged to l.Budget; the charge is released when ReadBody returns, since
// the bytes then belong to the caller. If r has a read deadline (a
// [Stream]), ReadBody sets it per l and clears it on return.
//
// Errors: [ErrOverBudget] when a growth is refused, [ErrFrameTooSlow] when
// the deadline passes, io.ErrUnexpectedEOF when the stream ends first, or
// the read error.
func (l FrameLimits) ReadBody(r io.Reader, n int) ([]byte, error) {
	return l.read(r, n, true)
}

// ReadAll reads a message of unknown length up to r's EOF, as ReadBody
// reads a body: growing with the bytes, charged to l.Budget. A message
// longer than max bytes is [ErrTooLarge]. The rate applies only if r has a
// read deadline; a caller reading through a decoder (a WebSocket message)
// bounds the time itself, with [FrameLimits.Deadline].
func (l FrameLimits) ReadAll(r io.Reader, max int) ([]byte, error) {
	return l.read(r, max, false)
}

// ErrTooLarge is returned by [FrameLimits.ReadAll] for a message longer
// than its limit.
var ErrTooLarge = errors.New("core: message larger than its limit")

// read reads n bytes (exact) or up to EOF and at most n bytes.
func (l FrameLimits) read(r io.Reader, n int, exact bool) ([]byte, error) {
	dl, _ := r.(deadliner)
	if l.Grace <= 0 {
		dl = nil
	}
	start := time.Now()
	if dl != nil {
		defer dl.SetReadDeadline(time.Time{})
	}
	var charged int64
	defer func() { l.Budget.Release(charged) }()
	limit := n
	if !exact {
		limit = n + 1 // one byte past max tells a message too long
	}
	buf := make([]byte, 0)
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			size := min(limit, max(2*cap(buf), frameChunk))
			if !l.Budget.TryAcquire(int64(size - cap(buf))) {
				return nil, ErrOverBudget
			}
			charged += int64(size - cap(buf))
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
		}
		if dl != nil {
			_ = dl.SetReadDeadline(l.Deadline(start, len(buf)+1))
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		switch {
		case err == nil:
		case exact && len(buf) == n:
		case errors.Is(err, io.EOF) && !exact:
			return buf, nil
		case errors.Is(err, io.EOF):
			return nil, io.ErrUnexpectedEOF
		case errors.Is(err, os.ErrDeadlineExceeded) && dl != nil:
			return nil, ErrFrameTooSlow
		default:
			return nil, err
		}
	}
	if !exact {
		return nil, ErrTooLarge
	}
	return buf, nil
}

// Deadline is when the k-th byte of a frame that started at start must
// have arrived; the zero time when l sets no deadline.
func (l FrameLimits) Deadline(start time.Time, k int) time.Time {
	if l.Grace <= 0 {
		return time.Time{}
	}
	d := l.Grace
	if l.MinRate > 0 {
		d += time.Duration(int64(k) * int64(time.Second) / l.MinRate)
	}
	return start.Add(d)
}
