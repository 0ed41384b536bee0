package quic

import (
	"net"
	"sync"

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
// The writer runs only while packets are queued (alknet patch 8): an idle
// connection keeps no goroutine, and no stack, for its sends.
type sendQueue struct {
	queue     chan queueEntry
	available chan struct{}
	conn      sendConn
	onError   func(error) // a write failed; called once, from the writer

	mx      sync.Mutex
	writing bool          // a writer is draining the queue
	closing bool          // Close was called: the writer ends once the queue is empty
	stopped bool          // no packet is written any more
	done    chan struct{} // closed when stopped
}

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

// write writes the queued packets until the queue is empty, then returns.
// At most one write runs at a time.
func (h *sendQueue) write() {
	for {
		h.mx.Lock()
		if len(h.queue) == 0 {
			h.writing = false
			if h.closing {
				h.stop()
			}
			h.mx.Unlock()
			return
		}
		h.mx.Unlock()
		e := <-h.queue // only this goroutine receives: it does not wait
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
	h.closing = true
	if !h.writing {
		h.stop()
	}
	h.mx.Unlock()
	<-h.done
}
