package quic

import (
	"sync"
	"time"

	"github.com/quic-go/quic-go/internal/monotime"
	"github.com/quic-go/quic-go/internal/utils/ringbuffer"
)

// receivedPacketQueueSize is the main queue's storage while no burst needs
// more (alknet patch 11: it was 8, 768 bytes that a mostly idle connection,
// which receives one packet at a time, never uses). A burst grows it by
// doubling, as far as the queue's limit.
const receivedPacketQueueSize = 1

// receivedPacketQueueShrinkAfter is how long after its last burst a queue
// that grew gives its storage back (alknet patch 11).
const receivedPacketQueueShrinkAfter = time.Second

// A sidePacket is a packet received on a Transport other than the one of the active path.
type sidePacket struct {
	receivedPacket
	source *pathReceiver
}

// The receivedPacketQueue queues received packets until they are processed by the connection's run loop.
// Packets are identified by the pathReceiver that the Transport passed them to, i.e. by the Transport they were received on.
// Packets received on the Transport of the active path are queued in the main queue.
// Packets received on any other Transport are queued in the side queue.
// The side queue is only used by clients that probe or migrate to new paths.
type receivedPacketQueue struct {
	mx     sync.Mutex
	limit  int // packets each queue holds at most (alknet patch 5)
	active *pathReceiver
	main   ringbuffer.RingBuffer[receivedPacket]
	side   ringbuffer.RingBuffer[sidePacket] // only allocated once a packet is received on a different Transport

	// burstAt is the receive time of the last packet queued behind more
	// than receivedPacketQueueSize others. A burst grows the queue's storage
	// (up to limit packets: 24 KiB at 256, 96 KiB at 1024); Pop gives it
	// back when it drains the queue receivedPacketQueueShrinkAfter later
	// (alknet patch 11), so a connection that once received a burst does not
	// keep that storage for its life.
	burstAt monotime.Time
}

// Init initializes the queue.
// The active pathReceiver is the one of the Transport that the connection was created on.
// limit is the number of packets each queue holds at most.
func (q *receivedPacketQueue) Init(active *pathReceiver, limit int) {
	q.main.Init(receivedPacketQueueSize)
	q.active = active
	q.limit = limit
}

// SetLimit changes the number of packets each queue holds at most (alknet
// patch 7). Packets queued beyond a lowered limit stay queued.
func (q *receivedPacketQueue) SetLimit(limit int) {
	q.mx.Lock()
	defer q.mx.Unlock()
	q.limit = limit
}

// Push queues a packet received by the pathReceiver source.
// It returns false if the packet was dropped because too many packets are queued.
func (q *receivedPacketQueue) Push(p receivedPacket, source *pathReceiver) bool {
	q.mx.Lock()
	defer q.mx.Unlock()

	if source == q.active {
		if q.main.Len() >= q.limit {
			return false
		}
		if q.main.Len() >= receivedPacketQueueSize {
			q.burstAt = p.rcvTime
		}
		q.main.PushBack(p)
		return true
	}

	if q.side.Len() >= q.limit {
		return false
	}
	q.side.PushBack(sidePacket{receivedPacket: p, source: source})
	return true
}

// shrink gives back the storage of queues that are empty and grew beyond
// their usual size, once now is receivedPacketQueueShrinkAfter past the
// last burst. The side queue, used only while a client switches paths, is
// given back whenever it is empty.
func (q *receivedPacketQueue) shrink(now monotime.Time) {
	if q.side.Empty() && q.side.Cap() > 0 {
		q.side = ringbuffer.RingBuffer[sidePacket]{}
	}
	if q.main.Empty() && q.main.Cap() > receivedPacketQueueSize && now.Sub(q.burstAt) >= receivedPacketQueueShrinkAfter {
		q.main.Init(receivedPacketQueueSize)
	}
}

// activePathID is returned by Pop for packets received on the active path.
// Like the qlog TupleID "", it refers to whichever path is currently active.
const activePathID pathID = -2

// Pop returns the next packet, and the ID of the path it was received on.
// The ID is activePathID for packets received on the active path.
// Packets in the side queue are returned first:
// When switching paths, the packets received on the old path are moved to the side queue.
func (q *receivedPacketQueue) Pop() (_ receivedPacket, path pathID, ok bool) {
	q.mx.Lock()
	defer q.mx.Unlock()

	if !q.side.Empty() {
		p := q.side.PopFront()
		q.shrink(p.rcvTime)
		if p.source == q.active {
			return p.receivedPacket, activePathID, true
		}
		return p.receivedPacket, p.source.id, true
	}
	if !q.main.Empty() {
		p := q.main.PopFront()
		q.shrink(p.rcvTime)
		return p, activePathID, true
	}
	return receivedPacket{}, activePathID, false
}

func (q *receivedPacketQueue) Empty() bool {
	q.mx.Lock()
	defer q.mx.Unlock()

	return q.main.Empty() && q.side.Empty()
}

// SwapActive is called when switching paths.
// It moves packets queued for the old path to the side queue, and returns the pathReceiver of the old path.
func (q *receivedPacketQueue) SwapActive(active *pathReceiver) (prev *pathReceiver) {
	q.mx.Lock()
	defer q.mx.Unlock()

	prev = q.active
	if active == prev {
		return prev
	}
	for !q.main.Empty() {
		q.side.PushBack(sidePacket{receivedPacket: q.main.PopFront(), source: prev})
	}
	q.active = active
	return prev
}

// Clear drops all queued packets.
func (q *receivedPacketQueue) Clear() {
	q.mx.Lock()
	defer q.mx.Unlock()

	for !q.main.Empty() {
		p := q.main.PopFront()
		p.buffer.Decrement()
		p.buffer.MaybeRelease()
	}
	for !q.side.Empty() {
		p := q.side.PopFront()
		p.buffer.Decrement()
		p.buffer.MaybeRelease()
	}
}
