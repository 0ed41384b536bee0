package call

import (
	"slices"
	"sync"
	"time"
)

// latencyWindow is how many recent latencies an operation keeps for its
// percentiles.
const latencyWindow = 1024

// opStats counts one operation's calls.
type opStats struct {
	mu        sync.Mutex
	requests  uint64
	errors    uint64
	latencies [latencyWindow]time.Duration
	next      int
	filled    bool
}

func newOpStats() *opStats { return &opStats{} }

// record counts one finished call.
func (s *opStats) record(d time.Duration, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if failed {
		s.errors++
	}
	s.latencies[s.next] = d
	s.next = (s.next + 1) % latencyWindow
	if s.next == 0 {
		s.filled = true
	}
}

// OpStats is one operation's counters, as services/stats reports them.
// Latencies are over the most recent calls, in milliseconds.
type OpStats struct {
	Name     string  `json:"name"`
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	P50ms    float64 `json:"p50_ms"`
	P90ms    float64 `json:"p90_ms"`
	P99ms    float64 `json:"p99_ms"`
}

func (s *opStats) snapshot(name string) OpStats {
	s.mu.Lock()
	n := s.next
	if s.filled {
		n = latencyWindow
	}
	lat := slices.Clone(s.latencies[:n])
	out := OpStats{Name: name, Requests: s.requests, Errors: s.errors}
	s.mu.Unlock()
	if len(lat) == 0 {
		return out
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
	}
	out.P50ms, out.P90ms, out.P99ms = pct(0.50), pct(0.90), pct(0.99)
	return out
}
