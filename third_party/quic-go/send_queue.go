package quic

import (
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go/internal/protocol"
)

type sender interface {
	Send(p *packetBuffer, gsoSize uint16, ecn protocol.ECN)
	SendProbe(*packetBuffer, net.Addr, packetInfo)
	WouldBlock() bool
	Available() <-chan struct{}
	Close()
}

type queueEntry struct {
	buf     *packetBuffer
	gsoSize uint16
	ecn     protocol.ECN
}

// sendQueue writes the connection's packets to the network on a goroutine
// of its own, so that the run loop does not wait for the system calls.
// The writer runs only while packets are queued, and for writerLinger after
// (alknet patches 8 and 13): an idle connection keeps no goroutine, and no
// stack, for its sends.
type sendQueue struct {
	queue     chan queueEntry
	available chan struct{}
	conn      sendConn
	onError   func(error) // a write failed; called once, from the writer

	// linger times the writer's wait for more packets (lingerFor, which
	// is writerLinger but in tests); only the writer uses it, made by the
	// first that waits.
	linger    *time.Timer
	lingerFor time.Duration

	mx      sync.Mutex
	writing bool          // a writer is draining the queue, or lingering
	closing bool          // Close was called: the writer ends once the queue is empty
	closed  chan struct{} // closed by Close: a lingering writer stops waiting
	stopped bool          // no packet is written any more
	done    chan struct{} // closed when stopped
}

// writerLinger is how long the writer waits for more packets once the
// queue is empty before its goroutine ends (alknet patch 13). A connection
// exchanging requests and answers sends bursts well under a millisecond
// apart; a writer started for each of them grew its new stack on its first
// write (the system call's frames need more than a new goroutine's stack
// holds): 2.7 % of the CPU samples of alknet's call benchmark. A
// connection that falls idle still keeps no writer.
const writerLinger = 5 * time.Millisecond

var _ sender = &sendQueue{}

const sendQueueCapacity = 8

// newSendQueue returns a queue writing to conn. onError is called when a
// write fails (other than with a message too large for the path); the
// queue writes nothing more after it.
func newSendQueue(conn sendConn, onError func(error)) sender {
	return &sendQueue{
		conn:      conn,
		onError:   onError,
		done:      make(chan struct{}),
		closed:    make(chan struct{}),
		lingerFor: writerLinger,
		available: make(chan struct{}, 1),
		queue:     make(chan queueEntry, sendQueueCapacity),
	}
}

// Send sends out a packet. It's guaranteed to not block.
// Callers need to make sure that there's actually space in the send queue by calling WouldBlock.
// Otherwise Send will panic.
func (h *sendQueue) Send(p *packetBuffer, gsoSize uint16, ecn protocol.ECN) {
	h.mx.Lock()
	defer h.mx.Unlock()
	if h.stopped {
		return
	}
	select {
	case h.queue <- queueEntry{buf: p, gsoSize: gsoSize, ecn: ecn}:
		// clear available channel if we've reached capacity
		if len(h.queue) == sendQueueCapacity {
			select {
			case <-h.available:
			default:
			}
		}
	default:
		panic("sendQueue.Send would have blocked")
	}
	if !h.writing {
		h.writing = true
		go h.write()
	}
}

// write writes the queued packets until the queue has stayed empty for
// writerLinger (or Close was called), then returns. At most one write runs
// at a time.
func (h *sendQueue) write() {
	for {
		var e queueEntry
		select {
		case e = <-h.queue: // only this goroutine receives
		default:
			var more bool
			if e, more = h.wait(); !more {
				return
			}
		}
		if err := h.conn.Write(e.buf.Data, e.gsoSize, e.ecn); err != nil {
			// This additional check enables:
			// 1. Checking for "datagram too large" message from the kernel, as such,
			// 2. Path MTU discovery,and
			// 3. Eventual detection of loss PingFrame.
			if !isSendMsgSizeErr(err) {
				h.mx.Lock()
				h.writing = false
				h.stop()
				h.mx.Unlock()
				h.onError(err)
				return
			}
		}
		e.buf.Release()
		select {
		case h.available <- struct{}{}:
		default:
		}
	}
}

// wait waits, with the queue empty, for the next packet, and returns it. It
// returns false, and the writer ends, if none came within the linger or
// Close was called and the queue is empty.
func (h *sendQueue) wait() (queueEntry, bool) {
	if h.linger == nil {
		h.linger = time.NewTimer(h.lingerFor)
	} else {
		h.linger.Reset(h.lingerFor)
	}
	select {
	case e := <-h.queue:
		h.linger.Stop()
		return e, true
	case <-h.linger.C:
	case <-h.closed:
		h.linger.Stop()
	}
	h.mx.Lock()
	defer h.mx.Unlock()
	select {
	case e := <-h.queue: // sent while the wait ended
		return e, true
	default:
	}
	h.writing = false
	if h.closing {
		h.stop()
	}
	return queueEntry{}, false
}

// stop ends the queue; h.mx is held.
func (h *sendQueue) stop() {
	if !h.stopped {
		h.stopped = true
		close(h.done)
	}
}

func (h *sendQueue) SendProbe(p *packetBuffer, addr net.Addr, info packetInfo) {
	h.conn.WriteTo(p.Data, addr, info)
}

func (h *sendQueue) WouldBlock() bool {
	return len(h.queue) == sendQueueCapacity
}

func (h *sendQueue) Available() <-chan struct{} {
	return h.available
}

// Close waits until the queued packets are written (or a write failed),
// then ends the queue: later packets are dropped.
func (h *sendQueue) Close() {
	h.mx.Lock()
	if !h.closing {
		h.closing = true
		close(h.closed)
	}
	if !h.writing {
		h.stop()
	}
	h.mx.Unlock()
	<-h.done
}
