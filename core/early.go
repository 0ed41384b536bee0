package core

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// EarlyDataHandler is implemented by a [Handler] that takes a QUIC
// connection before its handshake has completed, when the client resumed a
// session and sent 0-RTT data with its ClientHello. Such data can be a
// replay: whoever recorded the client's first packets can send them to the
// node again, as often as they like, until the ticket expires (a replay
// never completes the handshake, since it lacks the client's key share).
// The handler therefore acts on what arrives before [HandshakeComplete] only
// where doing it twice is harmless, and waits for the rest; the peer's
// identity is known from the start (the resumed session carries the
// client's key, checked again by the node's VerifyConnection).
//
// Every other handler gets its connections once the handshake completed,
// whatever the client sent early (docs/protocols/core.md, "0-RTT").
type EarlyDataHandler interface {
	Handler
	// AcceptsEarlyData reports whether the handler takes connections before
	// their handshake completed.
	AcceptsEarlyData() bool
}

// HandshakeComplete returns a channel closed once c's handshake has
// completed. It is closed already for every connection except a QUIC one an
// [EarlyDataHandler] took early and a client's connection from
// [Dialer.DialEarly] whose handshake is still under way.
func HandshakeComplete(c Conn) <-chan struct{} {
	if h, ok := c.(interface{ handshakeComplete() <-chan struct{} }); ok {
		return h.handshakeComplete()
	}
	return closedChan
}

// closedChan is a channel closed from the start.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (c *quicConn) handshakeComplete() <-chan struct{} { return c.qc.HandshakeComplete() }

func (b *boundConn) handshakeComplete() <-chan struct{} { return HandshakeComplete(b.Conn) }

// takesEarly reports whether qc, accepted before its handshake completed,
// goes to its handler now: the client's 0-RTT data was accepted and the
// handler of its ALPN takes early connections.
func (e *Endpoint) takesEarly(qc *quic.Conn) bool {
	cs := qc.ConnectionState()
	if !cs.Used0RTT {
		return false
	}
	h, ok := e.cfg.Router.Handler(cs.TLS.NegotiatedProtocol)
	if !ok {
		return false
	}
	eh, ok := h.(EarlyDataHandler)
	return ok && eh.AcceptsEarlyData()
}

// earlyKey marks a dial's context as early ([Dialer.DialEarly]); its value
// is an [earlyDial].
type earlyKey struct{}

// earlyDial is what an early dial's context carries to its QUIC dial.
type earlyDial struct {
	// pin is the NodeID the node is expected to prove; zero: not early.
	pin NodeID
	// fallback, if set, races TCP+TLS against the early connection's
	// handshake (Network auto).
	fallback *earlyFallback
}

// earlyFallback is the race an early connection with Network auto runs
// against its handshake, as [raceDials] runs it against a QUIC dial: an
// early dial returns before the node has answered, so the race goes on
// after it. TCP+TLS starts at tcpAt (at once if QUIC fails before); QUIC
// is given up at quicBy, TCP+TLS at tcpBy (zero: never). If TCP+TLS
// connects first, the QUIC connection is closed ([FellBackToTCP]) and won
// gets the TCP+TLS connection, for the caller's next Dial.
type earlyFallback struct {
	tcpAt, quicBy, tcpBy time.Time
	dialTCP              func(context.Context) (Conn, error)
	won                  func(logger *slog.Logger, tcp Conn)
}

// DialEarly is [Dialer.Dial] for a protocol whose first request need not
// wait for the handshake. Over QUIC, holding a session ticket the node
// issued for early data, it returns before the handshake completes, and
// what is written on the streams opened then leaves with the ClientHello
// (0-RTT): a round trip less. The node acts on early data only where a
// replay is harmless (an [EarlyDataHandler]; alknet/call's replay-safe
// queries) and holds the rest until the handshake completes.
//
// If the node refuses the early data (its ticket keys changed), each stream
// opened early writes what it had written again once the handshake
// completed, so the caller sees nothing but the lost round trip; a stream
// keeps at most 64 KiB for that, and a larger write waits for the
// handshake.
//
// With Network auto an early dial returns before the node has answered,
// so the race against TCP+TLS that Dial runs goes on after it returns:
// TCP+TLS starts after [Dialer.FallbackDelay] (at once if QUIC fails), and
// if it connects before the handshake completes, the QUIC connection is
// closed, its streams fail, and [FellBackToTCP] reports true: the caller
// sends what it sent again on a connection from Dial, which returns that
// TCP+TLS connection at once. With [Dialer.Paths], the node is then dialled
// over TCP+TLS first for a while, as when TCP+TLS wins Dial's race. A node
// remembered for TCP+TLS, or a negative FallbackDelay, gets Dial.
//
// Without a ticket for early data, through a head ([Dialer.Via]) or to a
// bare NodeID, DialEarly is Dial.
//
// Until the handshake completes Peer().NodeID is the key the ticket was
// filed under (pinned in addr or recorded in [Dialer.KnownNodes]): the
// handshake verifies it before any byte from the node can be read.
func (d *Dialer) DialEarly(ctx context.Context, addr, alpn string) (Conn, error) {
	if d.Network == NetworkTCP || d.Via != "" || d.Sessions == nil {
		return d.Dial(ctx, addr, alpn)
	}
	if _, err := ParseNodeID(addr); err == nil && d.Resolve != nil {
		return d.Dial(ctx, addr, alpn)
	}
	pin, hostport, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	if pin.IsZero() && d.KnownNodes != nil {
		if pin, err = d.KnownNodes.known(hostport); err != nil {
			return nil, err
		}
	}
	if pin.IsZero() { // nothing to resume: a full handshake
		return d.Dial(ctx, addr, alpn)
	}
	return d.dialDirect(context.WithValue(ctx, earlyKey{}, earlyDial{pin: pin}), addr, alpn)
}

// FellBackToTCP reports whether c, a connection from [Dialer.DialEarly]
// with Network auto that has ended, was closed because TCP+TLS connected
// before its handshake completed. The node then ran nothing sent on c but
// what a replay may run (an [EarlyDataHandler]'s replay-safe requests), and
// never will: all of it can be sent again on a connection from
// [Dialer.Dial], which returns that TCP+TLS connection. It waits for the
// fallback's TCP+TLS dial if one is still under way after c ended; it
// reports false for a connection still open, for one whose handshake
// completed or that ended for another reason, and for every other
// connection.
func FellBackToTCP(c Conn) bool {
	ec, ok := c.(*earlyConn)
	if !ok {
		return false
	}
	select {
	case <-ec.qc.Context().Done():
	default:
		return false
	}
	<-ec.settled
	if !ec.fellBack {
		return false
	}
	// Once the connection's loop has ended (its context is cancelled
	// last), HandshakeComplete is settled: quic-go closes it when the
	// client's Finished is queued, before any packet can carry it.
	select {
	case <-ec.qc.HandshakeComplete():
		return false
	default:
		return true
	}
}

// maxEarlyKept bounds what an early stream keeps to write again should the
// node refuse its early data; a write beyond it waits for the handshake.
const maxEarlyKept = 64 << 10

// earlyConn is a client's QUIC connection returned before its handshake
// completed ([Dialer.DialEarly]).
type earlyConn struct {
	*quicConn
	// settled is closed once the handshake completed (or failed) and, if
	// the node refused the early data, the connection is usable again.
	settled chan struct{}
	refused bool // the node refused the early data; read after settled
	// fellBack: TCP+TLS connected first and the connection was closed
	// for it ([earlyFallback]); read after settled.
	fellBack bool
	dial     earlyDial

	mu    sync.Mutex
	early []*earlyStream // streams opened before the connection settled
	done  bool           // settled: streams opened now are plain
}

func newEarlyConn(c *quicConn, dial earlyDial) *earlyConn {
	ec := &earlyConn{quicConn: c, settled: make(chan struct{}), dial: dial}
	go ec.settle()
	return ec
}

// settle waits for the handshake and, if the node refused the early data,
// moves the connection past the refusal (quic-go's NextConnection) and has
// each stream opened before write what it kept again at once, not when it
// is next used: a stream its writer closed may never be.
func (c *earlyConn) settle() {
	var complete bool
	if c.dial.fallback != nil {
		complete = c.race(c.dial.fallback)
	} else {
		select {
		case <-c.qc.HandshakeComplete():
			complete = true
		case <-c.qc.Context().Done():
		}
	}
	// Under mu, so that a stream OpenStream gets once streams open again
	// is never taken for an early one (and sent twice).
	c.mu.Lock()
	if complete && !c.qc.ConnectionState().Used0RTT {
		c.refused = true
		// The handshake is complete: NextConnection returns at once.
		_, _ = c.qc.NextConnection(context.Background())
	}
	streams := c.early
	c.early, c.done = nil, true
	c.mu.Unlock()
	close(c.settled)
	for _, s := range streams {
		s.mu.Lock()
		if !s.settled {
			_ = s.settleLocked() // a failure is the stream's next error
		}
		s.mu.Unlock()
	}
}

// race waits for the handshake while it races TCP+TLS against it (see
// [earlyFallback]), and reports whether the handshake completed. It ends
// when the handshake completes, when TCP+TLS connects first (fellBack), or
// when both have failed; and at once when the caller closes the connection
// or an error ends the race ([raceOver]).
func (c *earlyConn) race(fb *earlyFallback) bool {
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if !fb.tcpBy.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, fb.tcpBy)
	}
	defer cancel()
	tcpAt, quicBy := time.NewTimer(time.Until(fb.tcpAt)), time.NewTimer(time.Until(fb.quicBy))
	defer tcpAt.Stop()
	defer quicBy.Stop()
	type result struct {
		c   Conn
		err error
	}
	var tcp chan result // nil until TCP+TLS started
	startTCP := func() {
		if tcp == nil {
			tcp = make(chan result, 1)
			go func() {
				tc, err := fb.dialTCP(ctx)
				tcp <- result{tc, err}
			}()
		}
	}
	// abandon closes what a TCP+TLS dial still under way makes.
	abandon := func() {
		if tcp != nil {
			go func() {
				if r := <-tcp; r.c != nil {
					_ = r.c.CloseWithError(CodeNoError, "")
				}
			}()
		}
	}
	handshake, ended := c.qc.HandshakeComplete(), c.qc.Context().Done()
	var closedByRace, tcpFailed bool
	for {
		select {
		case <-handshake:
			abandon()
			return true
		case <-tcpAt.C:
			startTCP()
			continue
		case <-quicBy.C:
			if ended != nil {
				closedByRace = true
				_ = c.CloseWithError(CodeNoError, "no quic handshake in time")
			}
			continue
		case <-ended:
			handshake, ended = nil, nil
			var ae *quic.ApplicationError
			cause := context.Cause(c.qc.Context())
			if raceOver(cause) || !closedByRace && errors.As(cause, &ae) && !ae.Remote {
				abandon() // the node's answer, or closed by the caller
				return false
			}
			if tcpFailed {
				return false
			}
			startTCP()
			continue
		case r := <-tcp:
			tcp = nil
			if r.err != nil {
				if ended == nil {
					return false // QUIC failed already
				}
				if raceOver(r.err) {
					closedByRace = true
					_ = c.CloseWithError(CodeNoError, "refused over tcp+tls")
					return false
				}
				tcpFailed = true
				continue
			}
			select {
			case <-handshake: // both at once: QUIC keeps what it carries
				_ = r.c.CloseWithError(CodeNoError, "")
				return true
			default:
			}
			c.fellBack = true
			fb.won(c.Logger(), r.c)
			if ended != nil {
				_ = c.CloseWithError(CodeNoError, "tcp+tls connected first")
			}
			return false
		}
	}
}

func (c *earlyConn) handshakeComplete() <-chan struct{} { return c.qc.HandshakeComplete() }

// wait waits until the connection settled or ctx ended.
func (c *earlyConn) wait(ctx context.Context) error {
	select {
	case <-c.settled:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// isEarly reports whether what is written now may be early data.
func (c *earlyConn) isEarly() bool {
	select {
	case <-c.settled:
		return false
	default:
		return true
	}
}

// OpenStream implements [Conn]: a stream opened before the handshake
// completed keeps what it writes until then.
func (c *earlyConn) OpenStream(ctx context.Context) (Stream, error) {
	for {
		s, err := c.retry(ctx, c.qc.OpenStreamSync)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if !c.done {
			es := &earlyStream{c: c, cur: s}
			c.early = append(c.early, es)
			c.mu.Unlock()
			return es, nil
		}
		c.mu.Unlock()
		if !errors.Is(context.Cause(s.Context()), quic.Err0RTTRejected) {
			return s, nil
		}
		// Opened early, refused before it was ours: it holds nothing
		// yet, so a new one takes its place.
	}
}

// AcceptStream implements [Conn]. The node opens no stream before the
// handshake completes; a refusal of the early data ends the first wait.
func (c *earlyConn) AcceptStream(ctx context.Context) (Stream, error) {
	s, err := c.retry(ctx, c.qc.AcceptStream)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// retry runs get until it fails for another reason than a refusal of the
// early data, after which it waits for the connection to settle.
func (c *earlyConn) retry(ctx context.Context, get func(context.Context) (*quic.Stream, error)) (quicStream, error) {
	for {
		s, err := get(ctx)
		if err == nil {
			return quicStream{s}, nil
		}
		if !errors.Is(err, quic.Err0RTTRejected) {
			return quicStream{}, connErr(c.qc, err)
		}
		if err := c.wait(ctx); err != nil {
			return quicStream{}, err
		}
		if c.qc.Context().Err() != nil { // ended before its handshake
			return quicStream{}, connErr(c.qc, context.Cause(c.qc.Context()))
		}
	}
}

// earlyStream is a stream opened on an [earlyConn] before its handshake
// completed. Until the connection settles it keeps what is written (and
// whether the write side was closed); if the node refused the early data,
// the first operation that fails for it opens a new stream, writes the kept
// bytes again and carries on there.
type earlyStream struct {
	c *earlyConn

	mu       sync.Mutex
	cur      quicStream
	kept     []byte
	closed   bool // CloseWrite or Close was called
	readDone bool // Close was called: the read side is cancelled too
	aborted  bool
	rd, wd   time.Time
	settled  bool  // nothing more is kept
	failed   error // writing the kept bytes again failed
}

var errEarlyAborted = errors.New("core: stream aborted")

// keep records p to write again, if the connection has not settled,
// waiting for it when the kept bytes would pass maxEarlyKept. It returns
// the stream to write p on and whether p was kept.
func (s *earlyStream) keep(p []byte, fin bool) (quicStream, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.settled {
		if !s.c.isEarly() {
			if err := s.settleLocked(); err != nil {
				return quicStream{}, false, err
			}
			break
		}
		if len(s.kept)+len(p) > maxEarlyKept {
			s.mu.Unlock()
			err := s.c.wait(s.c.ctx)
			s.mu.Lock()
			if err != nil {
				return quicStream{}, false, err
			}
			continue
		}
		s.kept = append(s.kept, p...)
		s.closed = s.closed || fin
		return s.cur, true, nil
	}
	return s.cur, false, nil
}

// settleLocked drops what was kept once the connection settled, first
// writing it on a new stream if the node refused it.
func (s *earlyStream) settleLocked() error {
	kept := s.kept
	s.settled, s.kept = true, nil
	if !s.c.refused || s.aborted {
		return nil
	}
	qs, err := s.c.qc.OpenStreamSync(s.c.ctx)
	if err != nil {
		s.failed = connErr(s.c.qc, err)
		return s.failed
	}
	s.cur = quicStream{qs}
	if !s.rd.IsZero() {
		_ = qs.SetReadDeadline(s.rd)
	}
	if !s.wd.IsZero() {
		_ = qs.SetWriteDeadline(s.wd)
	}
	if s.readDone {
		qs.CancelRead(0)
	}
	if len(kept) > 0 {
		if _, err := qs.Write(kept); err != nil {
			s.failed = err
			return err
		}
	}
	if s.closed {
		return qs.Close()
	}
	return nil
}

// recover handles an error of the stream from: if the node refused the
// early data, it waits for the connection to settle and moves to the new
// stream; it returns err itself otherwise.
func (s *earlyStream) recover(from quicStream, err error) error {
	if !errors.Is(err, quic.Err0RTTRejected) {
		return err
	}
	if werr := s.c.wait(s.c.ctx); werr != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted {
		return errEarlyAborted
	}
	if s.failed != nil {
		return s.failed
	}
	if s.cur.Stream != from.Stream {
		return nil // moved already
	}
	if s.settled {
		return err // not a refusal this stream can recover from
	}
	return s.settleLocked()
}

func (s *earlyStream) current() quicStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *earlyStream) Read(p []byte) (int, error) {
	for {
		cur := s.current()
		n, err := cur.Read(p)
		if err == nil || !errors.Is(err, quic.Err0RTTRejected) {
			return n, err
		}
		if err := s.recover(cur, err); err != nil {
			return 0, err
		}
	}
}

func (s *earlyStream) Write(p []byte) (int, error) {
	cur, kept, err := s.keep(p, false)
	if err != nil {
		return 0, err
	}
	n, err := cur.Write(p)
	if err == nil || !errors.Is(err, quic.Err0RTTRejected) {
		return n, err
	}
	if err := s.recover(cur, err); err != nil {
		return 0, err
	}
	if kept {
		return len(p), nil // written again on the new stream
	}
	return s.current().Write(p)
}

func (s *earlyStream) CloseWrite() error {
	cur, kept, err := s.keep(nil, true)
	if err != nil {
		return err
	}
	err = cur.CloseWrite()
	if err == nil || !errors.Is(err, quic.Err0RTTRejected) {
		return err
	}
	if err := s.recover(cur, err); err != nil {
		return err
	}
	if kept {
		return nil
	}
	return s.current().CloseWrite()
}

func (s *earlyStream) Close() error {
	s.mu.Lock()
	s.readDone = true
	s.mu.Unlock()
	cur, _, err := s.keep(nil, true)
	if err != nil {
		return err
	}
	err = cur.Close()
	if err == nil || !errors.Is(err, quic.Err0RTTRejected) {
		return err
	}
	return s.recover(cur, err)
}

func (s *earlyStream) Abort(code ErrorCode) {
	s.mu.Lock()
	s.aborted = true
	cur := s.cur
	s.mu.Unlock()
	cur.Abort(code)
}

func (s *earlyStream) SetDeadline(t time.Time) error      { return s.deadline(t, true, true) }
func (s *earlyStream) SetReadDeadline(t time.Time) error  { return s.deadline(t, true, false) }
func (s *earlyStream) SetWriteDeadline(t time.Time) error { return s.deadline(t, false, true) }

// deadline sets t on the current stream's read side, write side or both,
// and records it for a stream that replaces it.
func (s *earlyStream) deadline(t time.Time, read, write bool) error {
	s.mu.Lock()
	if read {
		s.rd = t
	}
	if write {
		s.wd = t
	}
	cur := s.cur
	s.mu.Unlock()
	switch {
	case read && write:
		return cur.SetDeadline(t)
	case read:
		return cur.SetReadDeadline(t)
	default:
		return cur.SetWriteDeadline(t)
	}
}
