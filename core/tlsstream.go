package core

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/alkdev/alknet/core/netutil"
)

// maxTLSRecord is the most plaintext one TLS record carries (RFC 8446,
// section 5.1).
const maxTLSRecord = 16 << 10

// maxTLSBatch is the most plaintext a tlsStream's Write sends in one write
// to its socket.
const maxTLSBatch = 256 << 10

// tlsStream adapts a *tls.Conn to [Stream].
//
// crypto/tls reads and writes one record, at most 16 KiB, at a time: each
// Read hands out one, each record written is a write to the socket of its
// own. Over TCP (sock set) a tlsStream moves bulk data in larger pieces:
//
//   - A Read whose first record was a full one goes on to take the records
//     the socket already holds, without waiting, until p is full. A Read
//     whose record was not full returns at once, since its sender had no
//     more to send at that moment.
//   - A Write of more than one record hands the socket all of its records
//     (up to 256 KiB of them) in one write, while fewer than 32 such
//     batches are out in the process (tlsBatches); else record by record.
//
// A relay between a tlsStream and a TCP connection then reads and writes
// 256 KiB at a time, as OpenSSH does, where one read and one write per
// record woke the process at the other end once per 16 KiB: on loopback
// the TCP+TLS forward moved 1.2-1.5 times as much.
type tlsStream struct {
	*tls.Conn
	sock *tlsSocket // nil when the Conn does not run over TCP
}

// newTLSStream returns tc as a [Stream]; tc gathers records when it runs
// over a socket from [overTCP].
func newTLSStream(tc *tls.Conn) tlsStream {
	sock, _ := tc.NetConn().(*tlsSocket)
	return tlsStream{tc, sock}
}

func (s tlsStream) Read(p []byte) (int, error) {
	if s.sock == nil {
		return s.Conn.Read(p)
	}
	// Held for the whole Read, so that no other Read ever runs while the
	// socket does not wait.
	s.sock.reading.Lock()
	defer s.sock.reading.Unlock()
	n, err := s.Conn.Read(p)
	if err != nil || n < maxTLSRecord {
		return n, err
	}
	s.sock.noWait.Store(true)
	for n < len(p) {
		m, err := s.Conn.Read(p[n:])
		n += m
		if err != nil {
			// Nothing more buffered, or an error that stays with the
			// connection and ends the next Read.
			break
		}
	}
	s.sock.noWait.Store(false)
	return n, nil
}

// Write writes p in records, as crypto/tls does; over TCP, a p larger than
// one record goes to the socket in writes of up to 256 KiB of records each.
func (s tlsStream) Write(p []byte) (int, error) {
	if s.sock == nil || len(p) <= maxTLSRecord {
		return s.Conn.Write(p)
	}
	s.sock.writing.Lock()
	defer s.sock.writing.Unlock()
	var n int
	for len(p) > 0 {
		chunk := p[:min(len(p), maxTLSBatch)]
		if !s.sock.hold() {
			m, err := s.Conn.Write(p)
			return n + m, err
		}
		m, err := s.Conn.Write(chunk)
		if ferr := s.sock.flush(); ferr != nil {
			return n, ferr // what went unwritten is unknown
		}
		n += m
		if err != nil {
			return n, err
		}
		p = p[len(chunk):]
	}
	return n, nil
}

// Close closes the connection. During a Write it closes the socket first,
// as crypto/tls does during a Write of its own, so that the close_notify
// does not wait behind a batch the peer is not reading.
func (s tlsStream) Close() error {
	if s.sock == nil || s.sock.writing.TryLock() {
		if s.sock != nil {
			s.sock.writing.Unlock()
		}
		return s.Conn.Close()
	}
	err := s.sock.TCPConn.Close()
	_ = s.Conn.Close() // no close_notify now, but the Conn knows it is closed
	return err
}

func (s tlsStream) CloseWrite() error {
	err := s.Conn.CloseWrite()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Abort resets the TCP connection (no close_notify, RST instead of FIN), so
// the peer sees an error rather than a clean end; a relayed connection's
// stream is aborted.
func (s tlsStream) Abort(code ErrorCode) {
	nc := s.Conn.NetConn()
	if a, ok := nc.(interface{ Abort(ErrorCode) }); ok { // relayed
		a.Abort(code)
		return
	}
	if s.sock != nil {
		_ = s.sock.SetLinger(0)
	}
	_ = nc.Close()
}

// tlsSocket is the TCP connection under a [tlsStream].
//
// While noWait is set its Read takes what the kernel holds and never
// waits: with nothing there it fails with errNothingBuffered, which
// crypto/tls treats as it treats a read deadline's timeout (the connection
// stays good, a partial record stays buffered).
//
// Between hold and flush its Write keeps what it is given, and flush
// writes all of it at once. crypto/tls writes one record at a time under
// its own lock, so the records reach the batch in their order; a record
// written after the batch was taken (a close_notify from a Close that
// runs during a Write) may reach the socket before the batch, as it may
// when crypto/tls breaks a Write by closing.
type tlsSocket struct {
	*net.TCPConn
	raw syscall.RawConn

	reading sync.Mutex // held by a tlsStream's Read
	noWait  atomic.Bool

	writing sync.Mutex // held by a tlsStream's batched Write
	mu      sync.Mutex // guards batch and failed
	batch   *[]byte    // records kept back, or nil
	failed  error      // a flush's error, which every later write returns
}

// overTCP returns nc ready to carry a TLS connection: a TCP connection as
// a *tlsSocket, anything else (a relayed stream) as it is.
func overTCP(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok || !readsWithoutWaiting {
		return nc
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	return &tlsSocket{TCPConn: tc, raw: raw}
}

func (s *tlsSocket) Read(p []byte) (int, error) {
	if !s.noWait.Load() {
		return s.TCPConn.Read(p)
	}
	return s.readNoWait(p)
}

func (s *tlsSocket) Write(b []byte) (int, error) {
	s.mu.Lock()
	if s.failed != nil {
		s.mu.Unlock()
		return 0, s.failed
	}
	if s.batch != nil {
		*s.batch = append(*s.batch, b...)
		s.mu.Unlock()
		return len(b), nil
	}
	s.mu.Unlock()
	return s.TCPConn.Write(b)
}

// tlsBatches bounds the memory of batched writes: a peer that stops
// reading holds a batch for as long as it stalls, and past 32 batches out
// (8 MiB) Writes go a record at a time, as crypto/tls's own.
var tlsBatches = netutil.NewLender(maxTLSBatch+maxTLSBatch/maxTLSRecord*64, 32)

// hold starts keeping writes back for flush, and reports false when no
// batch buffer is left.
func (s *tlsSocket) hold() bool {
	b := tlsBatches.Borrow()
	if b == nil {
		return false
	}
	s.mu.Lock()
	s.batch = b
	s.mu.Unlock()
	return true
}

// flush writes what was kept back since hold, and writes go straight to
// the socket again. Its error stays: a TLS connection missing records is
// broken for good.
func (s *tlsSocket) flush() error {
	s.mu.Lock()
	b := s.batch
	s.batch = nil
	err := s.failed
	s.mu.Unlock()
	if err == nil && len(*b) > 0 {
		if _, err = s.TCPConn.Write(*b); err != nil {
			s.mu.Lock()
			s.failed = err
			s.mu.Unlock()
		}
	}
	tlsBatches.Return(b)
	return err
}

// errNothingBuffered is a tlsSocket's read without waiting that found
// nothing. A temporary [net.Error], so crypto/tls keeps the connection.
var errNothingBuffered net.Error = nothingBuffered{}

type nothingBuffered struct{}

func (nothingBuffered) Error() string   { return "core: nothing buffered on the socket" }
func (nothingBuffered) Timeout() bool   { return true }
func (nothingBuffered) Temporary() bool { return true }
