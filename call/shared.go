package call

import (
	"context"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// A shared stream carries many calls of one side on a QUIC connection, as
// the one stream of a single-stream connection does: frames multiplexed by
// request id, writes coalesced, and each call under the window its caller
// offers (call.credit). A head opens one to each attached worker and sends
// its routed calls on it: a QUIC stream per call costs the stream's
// opening and closing, its FIN and a packet or more each way of its own,
// on both the head and the worker, and a head pays that on top of the
// caller's own stream for every routed call.
//
// The opener's first frame is call.shared with a fresh id; the peer takes
// the stream as shared and answers with the same envelope. A peer that
// predates call.shared answers call.error and closes the stream; the
// opener then goes back to a stream per call on that connection.

// shareWait bounds the wait for the peer's answer to call.shared: a peer
// that does not answer in time is called on a stream per call.
const shareWait = 5 * time.Second

// sharedOut holds the stream this side's calls share on a QUIC connection.
type sharedOut struct {
	mu      sync.Mutex
	fs      *frameStream // nil until opened, and after it ended
	refused bool         // the peer does not know call.shared
	wg      sync.WaitGroup
}

// share makes a stream read as the shared stream of its connection.
func (f *frameStream) share() {
	f.shared, f.coalesce = true, true
	f.qcond = sync.NewCond(&f.qmu)
}

// outStream returns the stream to send a call on for a session that
// shares one (a head's session with a worker): opened on first use; nil
// means a stream of the call's own.
func (s *session) outStream(ctx context.Context) *frameStream {
	o := s.out
	if o == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fs != nil || o.refused {
		return o.fs
	}
	fs, refused := s.openShared(ctx)
	o.refused = refused
	o.fs = fs
	return fs
}

// openShared opens a shared stream and waits for the peer to take it as
// one. refused means the peer answered otherwise: it does not share.
func (s *session) openShared(ctx context.Context) (fs *frameStream, refused bool) {
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		return nil, false
	}
	fs = newFrameStream(st, true)
	fs.share()
	id := newID()
	frame, err := EncodeEnvelope(TypeShared, id, emptyPayload)
	if err == nil {
		err = fs.write(frame)
	}
	if err != nil {
		st.Abort(core.CodeProtocol)
		return nil, false
	}
	wctx, cancel := context.WithTimeout(ctx, shareWait)
	stop := context.AfterFunc(wctx, func() { _ = st.SetReadDeadline(past) })
	body, err := ReadFrameWithin(st, s.maxFrame(), s.lim)
	stop()
	cancel()
	_ = st.SetReadDeadline(time.Time{})
	if err != nil {
		st.Abort(core.CodeProtocol)
		return nil, false
	}
	if env, err := DecodeEnvelope(body); err != nil || env.Type != TypeShared || env.ID != id {
		// An older peer: its call.error, then its end of the stream.
		_ = st.Close()
		return nil, true
	}
	s.out.wg.Add(1)
	go func() {
		defer s.out.wg.Done()
		stop := context.AfterFunc(s.ctx, func() { st.Abort(core.CodeProtocol) })
		defer stop()
		s.readLoop(fs)
		s.sharedEnded(fs)
	}()
	return fs, false
}

// sharedEnded forgets a shared stream this side opened once its reader
// is done: its calls fail, and the next call opens another.
func (s *session) sharedEnded(fs *frameStream) {
	o := s.out
	o.mu.Lock()
	if o.fs == fs {
		o.fs = nil
	}
	o.mu.Unlock()
	fs.s.Abort(core.CodeProtocol)
	s.mu.Lock()
	var lost []*pending
	for _, p := range s.pending {
		if p.on == fs {
			lost = append(lost, p)
		}
	}
	s.mu.Unlock()
	for _, p := range lost {
		p.fail(Errorf(CodeUnavailable, "connection's shared stream ended"))
	}
}

// takeShared answers a peer's call.shared, the first frame of a stream it
// opened: the stream is read and written as shared from now on.
func (s *session) takeShared(fs *frameStream, env Envelope) error {
	fs.share()
	frame, err := EncodeEnvelope(TypeShared, env.ID, emptyPayload)
	if err != nil {
		return err
	}
	return fs.write(frame)
}

// sharedGone ends the calls this side serves on a QUIC stream the peer
// shared once the stream is gone: their answers have nowhere to go, and a
// subscription waiting for credit would wait for ever. On the opener's side
// (outbound) that stream's own calls fail in sharedEnded.
func (s *session) sharedGone(fs *frameStream) {
	if fs.outbound {
		return
	}
	fs.wmu.Lock()
	_ = fs.s.Close()
	fs.wmu.Unlock()
	s.mu.Lock()
	var gone []*inflight
	for _, inf := range s.inbound {
		if inf.fs == fs {
			gone = append(gone, inf)
		}
	}
	s.mu.Unlock()
	for _, inf := range gone {
		inf.abort()
	}
}
