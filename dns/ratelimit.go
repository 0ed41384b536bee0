package dns

import (
	"sync"
	"time"
)

// rateLimiter admits at most perMinute events per source in each
// one-minute window. It tracks at most maxSources sources per window;
// beyond that new sources are refused until the window turns, so memory
// stays bounded under a flood of addresses.
type rateLimiter struct {
	perMinute int // <0: no limit
	now       func() time.Time

	mu     sync.Mutex
	window time.Time
	counts map[string]int
}

const maxSources = 100_000

func newRateLimiter(perMinute int, now func() time.Time) *rateLimiter {
	return &rateLimiter{perMinute: perMinute, now: now, counts: map[string]int{}}
}

// allow counts one event for source and reports whether it is admitted.
func (l *rateLimiter) allow(source string) bool {
	if l.perMinute < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.now().Truncate(time.Minute); !w.Equal(l.window) {
		l.window = w
		clear(l.counts)
	}
	n, ok := l.counts[source]
	if !ok && len(l.counts) >= maxSources {
		return false
	}
	if n >= l.perMinute {
		return false
	}
	l.counts[source] = n + 1
	return true
}
