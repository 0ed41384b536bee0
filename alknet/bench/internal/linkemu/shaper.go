// Package linkemu is the link emulator's forwarder: it moves IP packets
// between two TUN devices in two network namespaces with a rate limit, a
// drop-tail queue, loss and delay. It runs as a process of its own,
// started and driven by netem.StartLink (alknet/bench/internal/netem; see
// Main for the protocol); the types that users see are netem's.
package linkemu

import (
	"math"
	"math/rand/v2"
	"time"
)

// Config is what the forwarder emulates, each direction alike; bench's
// LinkProfile, defaults filled in, converted. Zero RateBps means no rate
// limit (and no queue).
type Config struct {
	// NS are the namespaces of sides A and B (names under /run/netns);
	// Device is the TUN device's name in each.
	NS     [2]string
	Device string
	// Delay is the one-way delay; Jitter varies it by ±Jitter.
	Delay, Jitter time.Duration
	RateBps       int64
	Loss          float64
	GE            *GilbertElliott
	// QueueBytes and QueuePackets (if positive) bound the drop-tail
	// queue before the rate limit.
	QueueBytes, QueuePackets int
	MTU                      int
	// Seed seeds the loss draws; direction B to A uses Seed+1.
	Seed uint64
}

// GilbertElliott is the two-state loss model, as netem.GilbertElliott.
type GilbertElliott struct {
	P, R              float64
	LossGood, LossBad float64
}

// DirectionStats are one direction's counters, as netem.DirectionStats
// (the two travel as JSON with the same field names).
type DirectionStats struct {
	Read, Passed, Bytes           int64
	Lost, BurstLost, Queue        int64
	TooBig, Overflow, WriteErrors int64
	LateSum, LateMax              time.Duration
}

// dropCause is why the shaper dropped a packet (0: it did not).
type dropCause int

const (
	dropNone dropCause = iota
	dropLoss
	dropBurst
	dropQueue
)

// shaper decides each packet's fate in one direction: drop-tail queue and
// rate limit, then loss, then delay. Times are nanoseconds on any
// monotonic clock. It is not safe for concurrent use; each direction has
// its own, used by its reader goroutine alone.
type shaper struct {
	delay, jitter int64   // one-way base delay and ±jitter, ns
	nsPerByte     float64 // serialization time; 0 without a rate limit
	queueBytes    float64
	queuePackets  int
	loss          float64
	ge            *GilbertElliott
	geBad         bool
	rng           *rand.Rand

	busy        float64 // the rate limiter has sent everything admitted by then
	lastRelease int64   // keeps the packets in order
	departs     []int64 // ring of the queued packets' departure times (QueuePackets)
	head, n     int
}

func newShaper(p Config, seed uint64) *shaper {
	s := &shaper{
		delay:        int64(p.Delay),
		jitter:       int64(p.Jitter),
		queueBytes:   float64(p.QueueBytes),
		queuePackets: p.QueuePackets,
		loss:         p.Loss,
		ge:           p.GE,
		rng:          rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	if p.RateBps > 0 {
		s.nsPerByte = 8e9 / float64(p.RateBps)
	}
	if p.QueuePackets > 0 {
		s.departs = make([]int64, p.QueuePackets)
	}
	return s
}

// admit decides the fate of a packet of size bytes arriving at now: the
// time to release it to the other side, or why it is dropped. If
// noLoss is true, the loss models are skipped (and their state frozen).
func (s *shaper) admit(now int64, size int, noLoss bool) (release int64, cause dropCause) {
	depart := float64(now)
	if s.nsPerByte > 0 {
		start := max(s.busy, float64(now))
		queued := (start - float64(now)) / s.nsPerByte // bytes ahead of this one
		if queued+float64(size) > s.queueBytes {
			return 0, dropQueue
		}
		if s.queuePackets > 0 {
			for s.n > 0 && s.departs[s.head] <= now {
				s.head, s.n = (s.head+1)%len(s.departs), s.n-1
			}
			if s.n >= s.queuePackets {
				return 0, dropQueue
			}
		}
		depart = start + float64(size)*s.nsPerByte
		s.busy = depart
		if s.queuePackets > 0 {
			s.departs[(s.head+s.n)%len(s.departs)] = int64(depart)
			s.n++
		}
	}
	// Lost packets still took their turn at the bottleneck.
	if !noLoss {
		if s.loss > 0 && s.rng.Float64() < s.loss {
			return 0, dropLoss
		}
		if g := s.ge; g != nil {
			if s.geBad {
				s.geBad = s.rng.Float64() >= g.R
			} else {
				s.geBad = s.rng.Float64() < g.P
			}
			lose := g.LossGood
			if s.geBad {
				lose = g.LossBad
			}
			if lose > 0 && s.rng.Float64() < lose {
				return 0, dropBurst
			}
		}
	}
	release = int64(math.Ceil(depart)) + s.delay
	if s.jitter > 0 {
		release += s.rng.Int64N(2*s.jitter+1) - s.jitter
	}
	release = max(release, s.lastRelease, now)
	s.lastRelease = release
	return release, dropNone
}
