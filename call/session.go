package call

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/core"
)

// session runs the call protocol on one connection, in both directions: it
// serves the peer's requests from a registry and carries this side's calls
// to the peer. On QUIC every call has its own stream; on a single-stream
// connection one stream carries everything, multiplexed by request id.
type session struct {
	conn   core.Conn
	caller *core.Identity // the peer's identity: who its calls run as
	srv    *server
	multi  bool
	shared *frameStream // the one stream of a single-stream connection
	lim    core.FrameLimits
	known  atomic.Bool // the peer is known: its key resolved or a token was accepted

	ctx    context.Context // ends when the session ends
	cancel context.CancelCauseFunc

	mu      sync.Mutex
	inbound map[string]*inflight
	pending map[string]*pending
	closed  bool

	wg      sync.WaitGroup // stream readers, requests and their workers
	workers *workers
	// out, when set, is the stream this side's calls share on a QUIC
	// connection (a head's session with a worker; see shared.go); nil:
	// a stream per call.
	out *sharedOut
}

// server is what a session needs to answer requests.
type server struct {
	reg          *Registry
	identities   core.IdentityProvider
	peers        *Peers
	maxFrame     int
	maxAnonFrame int // a frame from a peer not known yet
	logger       *slog.Logger
	// older answers call.shared as a peer that predates it does; only
	// export_test.go sets it, through Options, to stand in for one.
	older bool
}

func newSession(conn core.Conn, caller *core.Identity, srv *server) *session {
	multi := conn.MultiStream()
	ctx, cancel := context.WithCancelCause(conn.Context())
	s := &session{
		conn:    conn,
		caller:  caller,
		srv:     srv,
		multi:   multi,
		ctx:     ctx,
		cancel:  cancel,
		lim:     core.FrameLimitsOf(conn),
		inbound: make(map[string]*inflight),
		pending: make(map[string]*pending),
	}
	s.known.Store(caller != nil)
	s.workers = newWorkers(&s.wg)
	return s
}

// errSessionClosed ends calls whose connection is gone.
var errSessionClosed = errors.New("connection closed")

// open takes the one stream of a single-stream connection: the dialing
// side opens it, the accepting side accepts it. It does nothing on QUIC.
func (s *session) open(ctx context.Context, dialed bool) error {
	if s.multi {
		return nil
	}
	var st core.Stream
	var err error
	if dialed {
		st, err = s.conn.OpenStream(ctx)
	} else {
		st, err = s.conn.AcceptStream(ctx)
	}
	if err != nil {
		return err
	}
	// A connection negotiated as alknet/call (TCP+TLS, the control
	// socket) is a byte stream. One taken over from another protocol may
	// not be: a WebSocket sends each Write as one message.
	s.shared = newSharedStream(st, s.conn.ALPN() == ALPN)
	return nil
}

// serve serves the session until the connection ends, or until ctx ends,
// after which no new stream is taken and the calls in flight finish. Every
// call of the session has ended when it returns.
func (s *session) serve(ctx context.Context) {
	defer s.shutdown()
	if !s.multi {
		s.readLoop(s.shared) // returns when the one stream ends
		return
	}
	for {
		st, err := s.conn.AcceptStream(ctx)
		if err != nil {
			break
		}
		fs := newFrameStream(st, false)
		s.workers.Go(func() { s.readLoop(fs) })
	}
	// Shutdown or connection end: wait for the calls in flight.
	s.workers.close()
	s.wg.Wait()
}

// shutdown ends every call of the session.
func (s *session) shutdown() {
	s.mu.Lock()
	s.closed = true
	pend := s.pending
	s.pending = map[string]*pending{}
	s.mu.Unlock()
	for _, p := range pend {
		p.fail(Errorf(CodeUnavailable, "connection closed"))
	}
	s.cancel(errSessionClosed)
	s.workers.close()
	s.wg.Wait()
	if s.out != nil {
		s.out.wg.Wait() // the shared stream's reader, ended by the cancel
	}
}

// frameStream is a stream with serialized frame writes.
type frameStream struct {
	s   core.Stream
	wmu sync.Mutex

	// On a shared byte stream (coalesce), frames written while another
	// write is in progress are queued and go out with the writer's next
	// Write: one TLS record and one syscall for many frames, where every
	// frame used to cost both (a third of the CPU of the TCP+TLS call
	// benchmark).
	// At most maxQueued bytes wait; a writer beyond waits its turn.
	qmu     sync.Mutex
	qcond   *sync.Cond // signalled when the writer takes the queue
	queued  []byte
	spare   []byte      // the buffer last written, reused for the next queue
	writing bool        // a writer holds the stream and drains the queue
	werr    error       // the stream's first write error: it is broken
	flush   *time.Timer // writes lazy frames nobody took along
	// coalesce: the stream is a byte stream, which frames may share a
	// Write on; not a WebSocket's, whose every Write is one message.
	coalesce bool

	mu       sync.Mutex
	active   int  // calls using the stream
	eof      bool // the peer finished sending
	wclosed  bool
	outbound bool // opened by this side for one call
	broken   bool // read directly and left inside a frame
	shared   bool // the one stream of a single-stream connection
}

func newFrameStream(s core.Stream, outbound bool) *frameStream {
	fs := &frameStream{s: s, outbound: outbound}
	if outbound {
		fs.active = 1
	}
	return fs
}

// newSharedStream wraps the one stream of a single-stream connection, which
// lives as long as the connection.
func newSharedStream(s core.Stream, coalesce bool) *frameStream {
	f := &frameStream{s: s, shared: true, coalesce: coalesce}
	f.qcond = sync.NewCond(&f.qmu)
	return f
}

// maxQueued bounds the bytes of frames queued behind a write in progress
// on the shared stream.
const maxQueued = 64 << 10

// lazyDelay is how long a lazy frame ([frameStream.writeLazy]) waits for
// another frame to ride with at most.
const lazyDelay = 5 * time.Millisecond

// write writes one frame. On a shared byte stream a frame written while
// another goroutine writes is queued for it and write returns at once:
// the frame leaves in order, after those queued before it. An error of
// that later write breaks the stream, and with it the connection's calls.
// An empty frame writes what is queued, if no writer is at it.
func (f *frameStream) write(frame []byte) error {
	if !f.coalesce {
		f.wmu.Lock()
		defer f.wmu.Unlock()
		_, err := f.s.Write(frame)
		return err
	}
	f.qmu.Lock()
	for f.writing && f.werr == nil && len(f.queued) > 0 && len(f.queued)+len(frame) > maxQueued {
		f.qcond.Wait()
	}
	switch {
	case f.werr != nil:
		err := f.werr
		f.qmu.Unlock()
		return err
	case f.writing:
		f.queued = append(f.queued, frame...)
		f.qmu.Unlock()
		return nil
	case len(f.queued) == 0 && len(frame) == 0:
		f.qmu.Unlock()
		return nil
	}
	f.writing = true
	buf, queue := frame, false
	if len(f.queued) > 0 {
		// Lazy frames go first.
		buf, queue = append(f.queued, frame...), true
		f.queued, f.spare = f.spare, nil
	}
	f.qmu.Unlock()
	for {
		f.wmu.Lock()
		_, err := f.s.Write(buf)
		f.wmu.Unlock()
		f.qmu.Lock()
		if queue && cap(buf) <= 2*maxQueued {
			f.spare = buf[:0]
		}
		if err != nil && f.werr == nil {
			f.werr = err
		}
		if err != nil || len(f.queued) == 0 {
			f.writing = false
			f.queued = nil
			f.qcond.Broadcast()
			f.qmu.Unlock()
			return err
		}
		buf, queue = f.queued, true
		f.queued, f.spare = f.spare, nil
		f.qcond.Broadcast()
		f.qmu.Unlock()
	}
}

// writeLazy queues a frame that is not urgent on the shared stream: it
// leaves with the next frame written, or after lazyDelay. A call.aborted
// that ends an answered query is such a frame: it costs no write of its
// own on a busy connection. Other streams write it at once.
func (f *frameStream) writeLazy(frame []byte) error {
	if !f.coalesce {
		return f.write(frame)
	}
	f.qmu.Lock()
	if f.werr != nil || f.writing || len(f.queued)+len(frame) > maxQueued {
		f.qmu.Unlock()
		return f.write(frame)
	}
	f.queued = append(f.queued, frame...)
	if f.flush == nil {
		f.flush = time.AfterFunc(lazyDelay, func() { _ = f.write(nil) })
	} else {
		f.flush.Reset(lazyDelay)
	}
	f.qmu.Unlock()
	return nil
}

// acquire counts a call answered on the stream.
func (f *frameStream) acquire() {
	if f.shared {
		return
	}
	f.mu.Lock()
	f.active++
	f.mu.Unlock()
}

// release ends a call on a per-call stream: when no call uses it any more,
// this side's writing ends, and once the peer's has too the stream closes.
// The shared stream of a single-stream connection is never released.
func (f *frameStream) release() {
	if f.shared {
		return
	}
	f.mu.Lock()
	f.active--
	done := f.active == 0 && !f.wclosed
	if done {
		f.wclosed = true
	}
	closeAll := f.active == 0 && f.eof
	f.mu.Unlock()
	if done {
		f.wmu.Lock()
		_ = f.s.CloseWrite()
		f.wmu.Unlock()
	}
	if closeAll {
		_ = f.s.Close()
	}
}

// setBroken notes that the stream's frame boundary may be lost: what is
// left of it is drained, not read as frames.
func (f *frameStream) setBroken() {
	f.mu.Lock()
	f.broken = true
	f.mu.Unlock()
}

// probeEnd notes the peer's end of a per-call stream this side reads
// directly if it has already arrived, without waiting: a QUIC callee's FIN
// mostly comes with its answer.
func (f *frameStream) probeEnd() {
	f.mu.Lock()
	skip := f.eof || f.broken
	f.mu.Unlock()
	if skip {
		return
	}
	_ = f.s.SetReadDeadline(past)
	var b [1]byte
	n, err := f.s.Read(b[:])
	_ = f.s.SetReadDeadline(time.Time{})
	switch {
	case errors.Is(err, io.EOF):
		f.ended()
	case n > 0:
		f.setBroken()
	}
}

// drain reads a per-call stream this side no longer needs to its end and
// closes it once the call has released it.
func (f *frameStream) drain() {
	_ = f.s.SetReadDeadline(time.Time{})
	var buf [512]byte
	for {
		if _, err := f.s.Read(buf[:]); err != nil {
			if !errors.Is(err, io.EOF) || f.ended() {
				_ = f.s.Close()
			}
			return
		}
	}
}

// peerEnded reports whether the peer has finished sending on a per-call
// stream.
func (f *frameStream) peerEnded() bool {
	if f.shared {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.eof
}

// ended records the peer's end of stream and reports whether the stream can
// be closed now.
func (f *frameStream) ended() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.eof = true
	return f.active == 0
}

// readLoop reads frames from fs and routes them until the stream ends.
func (s *session) readLoop(fs *frameStream) {
	shared := fs.shared
	first := true
	for {
		body, err := ReadFrameWithin(fs.s, s.maxFrame(), s.lim)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if shared {
					if fs != s.shared {
						s.sharedGone(fs)
					}
					return
				}
				if fs.ended() {
					_ = fs.s.Close()
				}
				return
			}
			// No frame boundary to resume from: the stream is lost, the
			// connection's other streams are not.
			if shared && fs != s.shared {
				defer s.sharedGone(fs)
			}
			switch {
			case errors.Is(err, core.ErrOverBudget):
				s.conn.Logger().Debug("call: frame over the in-flight budget; refusing the stream", "err", err)
				fs.s.Abort(core.CodeBusy)
			case errors.Is(err, ErrEmptyFrame) || errors.Is(err, ErrFrameTooLarge) ||
				errors.Is(err, ErrFrameTruncated) || errors.Is(err, core.ErrFrameTooSlow):
				s.conn.Logger().Debug("call: bad frame; closing the stream", "err", err)
				fs.s.Abort(core.CodeProtocol)
			}
			return
		}
		env, err := DecodeEnvelope(body)
		if err != nil {
			var ee *EnvelopeError
			errors.As(err, &ee)
			s.conn.Logger().Debug("call: bad envelope", "err", err)
			if ee != nil && ee.ID != "" {
				s.writeError(fs, ee.ID, Errorf(CodeInvalidInput, "%s", ee.Reason))
			}
			if shared {
				continue // the frame boundary is intact; other calls go on
			}
			// Close cleanly, so the error answer still reaches the peer.
			fs.wmu.Lock()
			_ = fs.s.Close()
			fs.wmu.Unlock()
			return
		}
		if env.Type == TypeShared {
			// Only as the first frame of a QUIC stream the peer opened;
			// anywhere else there is nothing to answer.
			if s.srv.older {
				s.writeError(fs, env.ID, Errorf(CodeInvalidInput, "unknown type %q", env.Type))
				fs.wmu.Lock()
				_ = fs.s.Close()
				fs.wmu.Unlock()
				return
			}
			if first && s.multi && !fs.outbound && !shared {
				if err := s.takeShared(fs, env); err != nil {
					fs.s.Abort(core.CodeProtocol)
					return
				}
				shared = true
			}
			first = false
			continue
		}
		first = false
		if env.Type == TypeRequested && !shared && !fs.outbound {
			// A call's own stream: the rest of it (call.aborted, the end)
			// is read on another goroutine, and the call is served on
			// this one, which saves the request a hand-off.
			s.serveRequest(fs, env, func() { s.readLoop(fs) })
			return
		}
		s.route(fs, env, core.FrameHeaderBytes+len(body))
	}
}

// maxFrame is the largest frame the peer may send now: less until it is
// known. A client reading its server's answers always allows maxFrame.
func (s *session) maxFrame() int {
	if s.known.Load() {
		return s.srv.maxFrame
	}
	return s.srv.maxAnonFrame
}

// route handles one envelope; size is its frame's length, prefix included.
func (s *session) route(fs *frameStream, env Envelope, size int) {
	switch env.Type {
	case TypeRequested:
		s.serveRequest(fs, env, nil)
	case TypeCredit:
		if !fs.shared {
			return // QUIC has its own flow control
		}
		c, err := DecodeCredit(env.Payload)
		if err != nil {
			// Its envelope id is empty: there is no call to answer.
			s.conn.Logger().Debug("call: bad envelope", "err", err)
			return
		}
		s.mu.Lock()
		inf := s.inbound[c.ID]
		s.mu.Unlock()
		if inf != nil && inf.credit != nil {
			inf.credit.grant(c.Bytes)
		}
	case TypeAborted:
		s.mu.Lock()
		inf := s.inbound[env.ID]
		p := s.pending[env.ID]
		s.mu.Unlock()
		if inf != nil {
			inf.abort()
		}
		if p != nil {
			// The peer abandoned our call: no abort goes back.
			s.drop(p)
			p.aborted.Store(true)
			p.fail(Errorf(CodeUnavailable, "aborted by the peer"))
			if p.direct && p.fs != fs {
				_ = p.fs.s.SetReadDeadline(past) // wake its reader
			}
		}
	case TypeResponded, TypeCompleted, TypeError:
		s.mu.Lock()
		p := s.pending[env.ID]
		s.mu.Unlock()
		if p == nil || p.direct {
			// A late answer to a call we gave up: nothing to do. A call
			// on its own stream takes answers from that stream only.
			return
		}
		if fs.shared {
			// One stream carries every call: the reader never waits for a
			// consumer. The call's window bounds what it queues; a peer
			// that sends beyond it (one without flow control, outrunning a
			// slow consumer) loses the call, not the connection.
			if !p.push(event{env: env, size: size}) {
				s.drop(p)
				s.sendAbort(p)
				p.fail(Errorf(CodeInternal, "peer sent beyond the call's receive window of %d bytes", p.initial))
			}
			return
		}
		// The call's own stream: wait for the consumer, so that a slow one
		// holds the stream's flow control and the peer's sending waits.
		p.wait(env)
	}
	// call.shared past a stream's first frame: nothing to answer, and
	// no call's consumer sees anything but answers.
}

// writeError answers id with a call.error on fs.
func (s *session) writeError(fs *frameStream, id string, e *Error) {
	frame, err := EncodeEnvelope(TypeError, id, e)
	if err == nil {
		err = fs.write(frame)
	}
	if err != nil {
		s.conn.Logger().Debug("call: write error answer", "err", err)
	}
}

// inflight is a request this side is serving.
type inflight struct {
	fs       *frameStream // the stream it is answered on
	cancel   context.CancelCauseFunc
	detached atomic.Bool
	credit   *credit // the caller's flow control; nil when it offered none
}

// credit is what a callee may still send of a call's call.responded
// frames on a single-stream connection: the caller's window, plus what it
// granted since, minus what was sent. A send waits while it is not
// positive; the frame that makes it negative was allowed, so a frame of
// any size gets through once the caller has taken everything before it.
type credit struct {
	turn chan struct{} // holds the call's one send in progress
	more chan struct{} // signalled when a grant arrives

	mu sync.Mutex
	n  int64 // at most MaxCallWindow; at least -HardMaxFrameBytes
}

func newCredit(window uint64) *credit {
	return &credit{turn: make(chan struct{}, 1), more: make(chan struct{}, 1), n: int64(min(window, MaxCallWindow))}
}

// grant adds b bytes, saturating at MaxCallWindow.
func (c *credit) grant(b uint64) {
	c.mu.Lock()
	c.n = min(c.n+int64(min(b, MaxCallWindow)), MaxCallWindow)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// send writes frame on fs once the call has credit, or fails when ctx ends
// first. Only the call's producer waits; the stream and the other calls do
// not. Sends of one call are serialized, so frames leave in the order their
// credit was taken.
func (c *credit) send(ctx context.Context, fs *frameStream, frame []byte) error {
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	defer func() { <-c.turn }()
	for {
		c.mu.Lock()
		ok := c.n > 0
		if ok {
			c.n -= int64(len(frame))
		}
		c.mu.Unlock()
		if ok {
			return fs.write(frame)
		}
		select {
		case <-c.more:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// errAborted is the cause of a request context the caller aborted.
var errAborted = errors.New("aborted by the caller")

func (i *inflight) abort() {
	i.detached.Store(true)
	i.cancel(errAborted)
}

// serveRequest starts serving a call.requested. With rest, the rest of
// the stream's reading, it serves the call on this goroutine once the
// stream counts it, and runs rest on another one.
func (s *session) serveRequest(fs *frameStream, env Envelope, rest func()) {
	p, err := decodeRequest(env.Payload)
	if err != nil {
		s.writeError(fs, env.ID, Errorf(CodeInvalidInput, "call.requested payload: %s", jsonReason(err)))
		if rest != nil {
			rest()
		}
		return
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	inf := &inflight{fs: fs, cancel: cancel}
	if fs.shared && p.Window > 0 {
		inf.credit = newCredit(p.Window)
	}
	s.mu.Lock()
	_, dup := s.inbound[env.ID]
	closed := s.closed
	if !dup && !closed {
		s.inbound[env.ID] = inf
		s.wg.Add(1)
	}
	s.mu.Unlock()
	switch {
	case closed:
		cancel(nil)
	case dup:
		cancel(nil)
		s.writeError(fs, env.ID, Errorf(CodeInvalidInput, "request id %q is already in use", core.Clip(env.ID)))
	}
	if closed || dup {
		if rest != nil {
			rest()
		}
		return
	}
	fs.acquire()
	release := func() {}
	if !s.multi {
		// A call waiting on the one stream (a quiet subscription) is work
		// in flight: the node's application idle timeout must not end it.
		release = core.Hold(s.conn)
	}
	serve := func() {
		defer s.wg.Done()
		defer release()
		defer fs.release()
		defer func() {
			s.mu.Lock()
			delete(s.inbound, env.ID)
			s.mu.Unlock()
			cancel(nil)
		}()
		s.srv.serveWire(ctx, s, fs, env.ID, p, inf)
	}
	if rest != nil {
		s.workers.Go(rest)
		serve()
		return
	}
	s.workers.Go(serve)
}

// pendingBuffer is how many events a call's channel holds. On QUIC the
// stream's reader waits once it is full, so the stream's flow control
// holds back the peer; on a single-stream connection the call's window
// bounds what the call keeps, and events beyond it wait in its backlog,
// which grows only with the bytes received. It is allocated with every
// call, most of which get one answer: 256 made a query allocate 18 KiB,
// more than half of a routed call's allocations, and 16 still 1 KiB, the
// largest allocation of a call.
const pendingBuffer = 8

// pending is a call this side made, waiting for its answers. The stream's
// reader delivers events; the caller's goroutine consumes them (next) and
// ends the call (end).
type pending struct {
	id     string
	fs     *frameStream
	events chan event // never closed: see stop

	// Flow control on a single-stream connection (flow): the reader
	// queues every event without waiting, in events and, once that is
	// full, in backlog; what it queues is bounded by the window offered
	// (initial) and the credits granted.
	direct  bool // on its own QUIC stream, which next reads itself: no events
	flow    bool
	initial int64
	mu      sync.Mutex
	backlog []event
	window  int64 // bytes the peer may still send, as this side counts
	owed    int64 // bytes consumed and not yet granted back
	ended   bool  // a terminal event was queued: nothing more is queued

	stopOnce sync.Once
	stop     chan struct{} // closed when the call is over for this side
	err      *Error        // why, when it failed; written before stop closes

	complete bool         // the consumer saw a terminal event (its goroutine only)
	once     bool         // the peer's operation answers once: its answer ends it
	on       *frameStream // the QUIC stream the call shares, if it does: set before the call is known
	aborted  atomic.Bool  // an abort was sent, or came from the peer
	released atomic.Bool
}

// event is an answer queued for a call's consumer, with its frame's size.
type event struct {
	env  Envelope
	size int
}

// newPending returns a call to be made; shared: on the one stream of a
// single-stream connection, under flow control.
func newPending(shared bool) *pending {
	p := &pending{id: newID(), stop: make(chan struct{})}
	if shared {
		p.events = make(chan event, pendingBuffer)
		p.flow, p.initial, p.window = true, CallWindow, CallWindow
	} else {
		// Its own QUIC stream, which its caller reads (nextDirect):
		// no reader hands it events.
		p.direct = true
	}
	return p
}

// push queues an event on a single-stream connection without waiting.
// A call.responded is charged to the call's window; false means the peer
// had no credit left for it. After a terminal event nothing more is kept.
func (p *pending) push(ev event) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.stop:
		return true // nobody listens any more: nothing to keep
	default:
	}
	if p.ended {
		return true
	}
	if ev.env.Type == TypeResponded {
		if p.window <= 0 {
			return false
		}
		p.window -= int64(ev.size)
	} else {
		p.ended = true
	}
	if len(p.backlog) == 0 {
		select {
		case p.events <- ev:
			return true
		default:
		}
	}
	p.backlog = append(p.backlog, ev)
	return true
}

// took notes that the consumer took ev: the backlog moves up into events,
// and a call.responded's bytes are owed back to the peer.
func (p *pending) took(ev event) {
	if !p.flow {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.backlog) > 0 {
		select {
		case p.events <- p.backlog[0]:
			p.backlog[0] = event{}
			p.backlog = p.backlog[1:]
			continue
		default:
		}
		break
	}
	if len(p.backlog) == 0 {
		p.backlog = nil
	}
	if ev.env.Type == TypeResponded {
		p.owed += int64(ev.size)
	}
}

// grantable returns the bytes to grant the peer now, counting them as
// granted: once the consumer has taken half a window, and only while the
// call goes on.
func (p *pending) grantable() uint64 {
	if !p.flow {
		return 0
	}
	select {
	case <-p.stop:
		return 0 // the call is over for this side
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended || p.owed < max(p.initial/2, 1) {
		return 0
	}
	n := p.owed
	p.owed = 0
	p.window += n
	return uint64(n)
}

// wait queues an event, waiting for room until the call is over.
func (p *pending) wait(env Envelope) {
	select {
	case p.events <- event{env: env}:
	case <-p.stop:
	}
}

// fail ends the call with e, unless it already ended.
func (p *pending) fail(e *Error) {
	p.stopOnce.Do(func() {
		p.err = e
		close(p.stop)
	})
}

// newID returns a random UUID v4.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	hex.Encode(out[9:13], b[4:6])
	hex.Encode(out[14:18], b[6:8])
	hex.Encode(out[19:23], b[8:10])
	hex.Encode(out[24:36], b[10:16])
	out[8], out[13], out[18], out[23] = '-', '-', '-', '-'
	return string(out[:])
}

// start sends a call.requested and returns the pending call.
func (s *session) start(ctx context.Context, op string, input json.RawMessage, token string, fwd *Forwarded) (*pending, error) {
	var out *frameStream // a shared stream: the one of a single-stream connection, or one on QUIC
	if s.multi {
		out = s.outStream(ctx)
	}
	p := newPending(!s.multi || out != nil)
	p.on = out
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, Errorf(CodeUnavailable, "connection closed")
	}
	s.pending[p.id] = p
	s.mu.Unlock()
	var window uint64
	if s.multi && out == nil {
		st, err := s.conn.OpenStream(ctx)
		if err != nil {
			s.drop(p)
			return nil, Errorf(CodeUnavailable, "open stream: %v", err)
		}
		// The caller reads the call's stream itself ([session.nextDirect]).
		p.fs = newFrameStream(st, true)
	} else {
		if out == nil {
			out = s.shared
		}
		if out == nil {
			s.drop(p)
			return nil, Errorf(CodeUnavailable, "connection not ready")
		}
		p.fs = out
		window = uint64(p.initial)
	}
	if isNull(input) {
		input = nil
	}
	frame, err := encodeRequest(p.id, RequestPayload{OperationID: op, Input: input, AuthToken: token, ForwardedFor: fwd, Window: window})
	if err != nil {
		s.end(p)
		return nil, Errorf(CodeInvalidInput, "%v", err)
	}
	if err := p.fs.write(frame); err != nil {
		s.end(p)
		return nil, Errorf(CodeUnavailable, "send request: %v", err)
	}
	return p, nil
}

// next returns the call's next event, or an *Error if the call failed; if
// ctx ends first the call fails with ctx's error (and end aborts it). The
// caller stops calling next after a terminal event.
func (s *session) next(ctx context.Context, p *pending) (Envelope, error) {
	if p.direct {
		return s.nextDirect(ctx, p)
	}
	if n := p.grantable(); n > 0 {
		s.sendCredit(p, n)
	}
	select {
	case ev := <-p.events:
		return p.consumed(ev), nil
	case <-p.stop:
		// Events queued before the end still count.
		select {
		case ev := <-p.events:
			return p.consumed(ev), nil
		default:
		}
		if p.err != nil {
			return Envelope{}, p.err
		}
		return Envelope{}, io.EOF
	case <-ctx.Done():
		p.fail(ctxError(ctx))
		return Envelope{}, p.err
	}
}

// past is a read deadline that has passed: it wakes a blocked read.
var past = time.Unix(1, 0)

// nextDirect is next for a call on its own QUIC stream, which the
// caller's goroutine reads itself: a reader goroutine handing each answer
// over a channel cost two wake-ups per call. Reading only as fast as the
// caller consumes is QUIC's flow control for the call, as before. ctx's
// end (or the peer's call.aborted on another stream) wakes the read with
// a passed deadline.
func (s *session) nextDirect(ctx context.Context, p *pending) (Envelope, error) {
	stop := context.AfterFunc(ctx, func() { _ = p.fs.s.SetReadDeadline(past) })
	defer stop()
	for {
		select {
		case <-p.stop:
			if p.err != nil {
				return Envelope{}, p.err
			}
			return Envelope{}, io.EOF
		default:
		}
		body, err := ReadFrameWithin(p.fs.s, s.maxFrame(), s.lim)
		switch {
		case ctx.Err() != nil:
			p.fs.setBroken()
			p.fail(ctxError(ctx))
			continue
		case errors.Is(err, io.EOF):
			p.fs.ended()
			p.fail(Errorf(CodeUnavailable, "the peer ended the call without an answer"))
			continue
		case err != nil:
			p.fs.setBroken()
			p.fail(Errorf(CodeUnavailable, "read answer: %v", err))
			continue
		}
		env, err := DecodeEnvelope(body)
		if err != nil {
			p.fs.setBroken()
			p.fail(Errorf(CodeInternal, "bad answer: %v", err))
			continue
		}
		size := core.FrameHeaderBytes + len(body)
		if env.ID != p.id {
			s.route(p.fs, env, size) // another call's abort, a request: as the reader would
			continue
		}
		switch env.Type {
		case TypeAborted:
			// The peer abandoned our call: no abort goes back.
			s.drop(p)
			p.aborted.Store(true)
			p.fail(Errorf(CodeUnavailable, "aborted by the peer"))
		case TypeResponded, TypeCompleted, TypeError:
			return p.consumed(event{env: env, size: size}), nil
		default:
			s.route(p.fs, env, size)
		}
	}
}

// consumed notes an event as it reaches the consumer.
func (p *pending) consumed(ev event) Envelope {
	p.took(ev)
	if ev.env.Type != TypeResponded || p.once {
		// A query's or mutation's answer is its end, when the peer's
		// spec says the operation is one: no call.aborted follows it.
		p.complete = true
	}
	return ev.env
}

// sendCredit grants the peer n more bytes for p.
func (s *session) sendCredit(p *pending, n uint64) {
	frame, err := EncodeEnvelope(TypeCredit, "", CreditPayload{ID: p.id, Bytes: n})
	if err == nil {
		err = p.fs.write(frame)
	}
	if err != nil {
		s.conn.Logger().Debug("call: write credit", "err", err)
	}
}

// ctxError maps a context's end to a call error.
func ctxError(ctx context.Context) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Errorf(CodeTimeout, "deadline exceeded")
	}
	return Errorf(CodeInternal, "call cancelled: %v", context.Cause(ctx))
}

// drop forgets a pending call, so late answers are ignored.
func (s *session) drop(p *pending) {
	s.mu.Lock()
	if s.pending[p.id] == p {
		delete(s.pending, p.id)
	}
	s.mu.Unlock()
}

// end finishes a call: it is forgotten, aborted on the peer unless it ran
// to its end, and this side's use of its stream ends. The stream closes
// once the peer has finished sending too, so no STOP_SENDING is needed and
// QUIC hands the stream's credit back at once.
func (s *session) end(p *pending) {
	s.drop(p)
	p.fail(nil)
	if p.released.Swap(true) {
		return
	}
	if p.direct {
		p.fs.probeEnd()
	}
	if !p.complete && p.fs != nil && !p.fs.peerEnded() {
		// A query's answer is not known to be its last (the operation
		// may be a subscription called as a query), unless the callee
		// has ended its call's stream, as QUIC callees do with the
		// answer: then there is nothing to abort.
		s.sendLazyAbort(p)
	}
	if p.fs != nil {
		p.fs.release()
	}
	if p.direct && !p.fs.peerEnded() {
		// Read on to the callee's end, so the stream closes cleanly
		// both ways and its credit returns without STOP_SENDING.
		s.workers.Go(p.fs.drain)
	}
}

// sendAbort tells the peer to stop serving p, once.
func (s *session) sendAbort(p *pending) {
	if p.aborted.Swap(true) {
		return
	}
	if frame, err := EncodeEnvelope(TypeAborted, p.id, emptyPayload); err == nil {
		_ = p.fs.write(frame)
	}
}

// sendLazyAbort is sendAbort for a call this side ends: mostly a query
// already answered, which has ended on the peer too, so the frame waits
// for company ([frameStream.writeLazy]).
func (s *session) sendLazyAbort(p *pending) {
	if p.aborted.Swap(true) {
		return
	}
	if frame, err := EncodeEnvelope(TypeAborted, p.id, emptyPayload); err == nil {
		_ = p.fs.writeLazy(frame)
	}
}
