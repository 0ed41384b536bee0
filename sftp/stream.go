package sftp

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"

	"github.com/alkdev/alknet/core"
)

// typeOpen is SSH_FXP_OPEN.
const typeOpen = 3

// trackedStream sits between a session's stream and pkg/sftp's request
// server. It does three things:
//
//   - It holds back the client's next request after an OPEN until the
//     OPEN has been answered. pkg/sftp registers a new handle before it
//     finishes setting it up, and serves READ and WRITE on other
//     goroutines, so a client that guesses the handle ("1", "2", ...) and
//     pipelines a READ or WRITE right behind its OPEN races pkg/sftp's
//     setup: a data race on the request, which a hostile client could use
//     to crash the process. Honest clients wait for the handle anyway.
//   - It remembers the stream's read error, to tell a stream that ended
//     from a client that sent garbage.
//   - It makes Close idempotent and wakes a held-back read.
//
// To do that it follows the packet framing (a 4-byte big-endian length,
// then the body whose first byte is the type) in both directions, and
// nothing more. pkg/sftp reads a packet as two ReadFull calls (length,
// then body), so capping each read at the end of the current frame costs
// nothing; it writes each packet whole, under its own lock, so the write
// side is never used concurrently.
type trackedStream struct {
	rw io.ReadWriteCloser

	// Read side: used only by pkg/sftp's reading goroutine.
	rhdr      [4]byte
	rhdrN     int    // header bytes read of the current frame
	rbodyLeft uint32 // body bytes still to read
	rtypeNext bool   // the next body byte is the packet type
	ropen     bool   // the current frame is an OPEN
	requests  uint64 // complete frames read

	// Write side: used only under pkg/sftp's write lock.
	whdr      [4]byte
	whdrN     int
	wbodyLeft uint32

	mu      sync.Mutex
	cond    sync.Cond
	replies uint64 // complete frames written
	waitFor uint64 // reads wait until replies reaches this
	open    bool   // the gate is open for good: the stream failed or closed
	readErr error
	closed  bool
}

func newTrackedStream(rw io.ReadWriteCloser) *trackedStream {
	t := &trackedStream{rw: rw}
	t.cond.L = &t.mu
	return t
}

func (t *trackedStream) Read(p []byte) (int, error) {
	if t.rhdrN == 4 && t.rbodyLeft == 0 {
		t.rhdrN = 0 // the previous frame is complete
	}
	if t.rhdrN == 0 {
		t.mu.Lock()
		for !t.open && t.replies < t.waitFor {
			t.cond.Wait()
		}
		closed := t.closed
		t.mu.Unlock()
		if closed {
			return 0, t.fail(net.ErrClosed)
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	if t.rhdrN < 4 {
		p = p[:min(len(p), 4-t.rhdrN)]
	} else {
		p = p[:min(uint32(len(p)), t.rbodyLeft)]
	}
	n, err := t.rw.Read(p)
	t.frameRead(p[:n])
	if err != nil {
		return n, t.fail(err)
	}
	return n, nil
}

// frameRead follows the framing of bytes read (never past a frame end).
func (t *trackedStream) frameRead(b []byte) {
	if len(b) == 0 {
		return
	}
	if t.rhdrN < 4 {
		t.rhdrN += copy(t.rhdr[t.rhdrN:], b)
		if t.rhdrN == 4 {
			t.rbodyLeft = binary.BigEndian.Uint32(t.rhdr[:])
			t.rtypeNext = true
		}
		return
	}
	if t.rtypeNext {
		t.ropen = b[0] == typeOpen
		t.rtypeNext = false
	}
	t.rbodyLeft -= uint32(len(b))
	if t.rbodyLeft == 0 {
		t.requests++
		if t.ropen {
			// Every request gets exactly one reply, in order: the OPEN is
			// answered when this many replies have gone out.
			t.mu.Lock()
			t.waitFor = t.requests
			t.mu.Unlock()
		}
	}
}

// fail records the stream's read error and returns it.
func (t *trackedStream) fail(err error) error {
	t.mu.Lock()
	if t.readErr == nil {
		t.readErr = err
	}
	t.mu.Unlock()
	return err
}

func (t *trackedStream) Write(p []byte) (int, error) {
	n, err := t.rw.Write(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		// The stream is gone and the framing may be off: stop holding
		// reads back.
		t.open = true
		t.cond.Broadcast()
		return n, err
	}
	for b := p[:n]; len(b) > 0; {
		if t.whdrN < 4 {
			c := copy(t.whdr[t.whdrN:], b)
			t.whdrN += c
			b = b[c:]
			if t.whdrN == 4 {
				t.wbodyLeft = binary.BigEndian.Uint32(t.whdr[:])
			}
		} else {
			c := min(uint32(len(b)), t.wbodyLeft)
			t.wbodyLeft -= c
			b = b[c:]
		}
		if t.whdrN == 4 && t.wbodyLeft == 0 {
			t.whdrN = 0
			t.replies++
			t.cond.Broadcast()
		}
	}
	return n, nil
}

// Close closes the stream once and releases a held-back read.
func (t *trackedStream) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed, t.open = true, true
	t.cond.Broadcast()
	t.mu.Unlock()
	return t.rw.Close()
}

// readFailed reports whether err is the stream's own read error.
func (t *trackedStream) readFailed(err error) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readErr != nil && errors.Is(err, t.readErr)
}

// abort ends a core stream with code so the peer sees a failure, not a
// clean end; other streams are closed.
func (t *trackedStream) abort(code core.ErrorCode) {
	st, ok := t.rw.(core.Stream)
	if !ok {
		_ = t.Close()
		return
	}
	t.mu.Lock()
	t.open = true
	t.cond.Broadcast()
	t.mu.Unlock()
	st.Abort(code)
}
