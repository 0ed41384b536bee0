package fs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/alkdev/alknet/core"
)

// peerLimits bound the reading of a CAR stream from a peer, section by
// section, as [core.FrameLimits] bound one frame: a section's buffer is
// charged to the connection's in-flight budget while its bytes arrive
// (the charge is released once the section is read: its block then
// belongs to the transfer), and a section that has begun must keep
// arriving, its k-th byte by Grace + k/MinRate after it began. So a put
// that stalls is cut after the grace, and the sections all of a node's
// peers are sending at once are bounded by the node's budgets, not by
// their declared lengths. A nil *peerLimits (a local file) bounds nothing.
type peerLimits struct {
	lim     core.FrameLimits
	stream  interface{ SetReadDeadline(time.Time) error } // nil: no deadlines
	start   time.Time                                     // when the current section began
	charged int64
}

// newPeerLimits returns the limits of lim for reading r, a peer's stream.
// r's read deadline is set only if it has one and lim a grace.
func newPeerLimits(r any, lim core.FrameLimits) *peerLimits {
	p := &peerLimits{lim: lim}
	if dl, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok && lim.Grace > 0 {
		p.stream = dl
	}
	return p
}

// begin starts a section (or the CAR's header) whose first k bytes may be
// awaited: the read deadline covers them.
func (p *peerLimits) begin(k int) {
	if p == nil {
		return
	}
	p.start = time.Now()
	p.expect(k)
}

// expect sets the read deadline for the current section's first k bytes.
func (p *peerLimits) expect(k int) {
	if p == nil || p.stream == nil {
		return
	}
	_ = p.stream.SetReadDeadline(p.lim.Deadline(p.start, k))
}

// readFull fills buf, the section's bytes from off on, from r: as
// [readFull], with the read deadline moved before each read to the next
// byte's, so a section that stops arriving fails within the grace.
func (p *peerLimits) readFull(r io.Reader, buf []byte, off int) error {
	if p == nil || p.stream == nil {
		return readFull(r, buf)
	}
	for n := 0; n < len(buf); {
		p.expect(off + n + 1)
		m, err := r.Read(buf[n:])
		n += m
		switch {
		case n == len(buf):
		case errors.Is(err, io.EOF):
			return io.ErrUnexpectedEOF
		case err != nil:
			return err
		}
	}
	return nil
}

// charge takes n more bytes of the budget for the current section's
// buffer: [core.ErrOverBudget] if the budget refuses them.
func (p *peerLimits) charge(n int) error {
	if p == nil {
		return nil
	}
	if !p.lim.Budget.TryAcquire(int64(n)) {
		return core.ErrOverBudget
	}
	p.charged += int64(n)
	return nil
}

// done releases the current section's charge.
func (p *peerLimits) done() {
	if p == nil {
		return
	}
	p.lim.Budget.Release(p.charged)
	p.charged = 0
}

// end releases what is charged and clears the read deadline, when the
// CAR has been read or failed.
func (p *peerLimits) end() {
	if p == nil {
		return
	}
	p.done()
	if p.stream != nil {
		_ = p.stream.SetReadDeadline(time.Time{})
	}
}

// tooSlow turns a read that passed its deadline into [core.ErrFrameTooSlow].
func tooSlow(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, core.ErrFrameTooSlow) {
		return fmt.Errorf("CAR section: %w", core.ErrFrameTooSlow)
	}
	return err
}

// paced writes to a peer's stream that must take each write at lim's rate
// after its grace (the k-th byte of a write by Grace + k/MinRate), as a
// peer must send a frame: a write to a peer that stopped reading fails
// with os.ErrDeadlineExceeded.
type paced struct {
	st  core.Stream
	lim core.FrameLimits
}

func (p paced) Write(b []byte) (int, error) {
	if dl := p.lim.Deadline(time.Now(), len(b)); !dl.IsZero() {
		_ = p.st.SetWriteDeadline(dl)
	}
	return p.st.Write(b)
}
