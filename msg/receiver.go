package msg

import (
	"fmt"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// Receiver opens envelopes and drops duplicates: it remembers each
// sender's message ids for twice the skew (the span in which an envelope's
// time is accepted), so a replay inside that span is refused and one after
// it fails the skew check. It is safe for concurrent use.
type Receiver struct {
	// Opener opens and checks each envelope.
	Opener Opener
	// Clock returns the time envelopes are checked against; nil means
	// time.Now.
	Clock func() time.Time

	mu   sync.Mutex
	seen map[seenKey]time.Time // when each id may be forgotten
}

// seenKey names one message of one sender.
type seenKey struct {
	from core.NodeID
	id   MessageID
}

// Receive opens env and records its id; errors are those of
// [Opener.Open], or one wrapping ErrDuplicate.
func (r *Receiver) Receive(env []byte) (*Message, error) {
	now := time.Now()
	if r.Clock != nil {
		now = r.Clock()
	}
	m, err := r.Opener.Open(env, now)
	if err != nil {
		return nil, err
	}
	skew := r.Opener.Skew
	if skew <= 0 {
		skew = DefaultSkew
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[seenKey]time.Time)
	}
	for k, until := range r.seen {
		if now.After(until) {
			delete(r.seen, k)
		}
	}
	k := seenKey{m.From, m.ID}
	if _, dup := r.seen[k]; dup {
		return nil, fmt.Errorf("msg: %w %s from %s", ErrDuplicate, m.ID, m.From.ShortString())
	}
	r.seen[k] = m.Time.Add(skew)
	return m, nil
}
