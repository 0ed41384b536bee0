package git

import (
	"sync"
	"time"
)

// Event describes one reference a successful push changed.
type Event struct {
	// Repo is the canonical repository name.
	Repo string `json:"repo"`
	// Ref is the full reference name, e.g. "refs/heads/main".
	Ref string `json:"ref"`
	// Old is the previous object ID; all zeros for a created reference.
	Old string `json:"old"`
	// New is the new object ID; all zeros for a deleted reference.
	New string `json:"new"`
	// Pusher is the ID of the identity that pushed.
	Pusher string `json:"pusher"`
	// Time is when the update was applied.
	Time time.Time `json:"time"`
}

// eventBuffer is how many events a subscriber may fall behind by before
// it is dropped.
const eventBuffer = 256

// broker fans push events out to subscribers.
type broker struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one listener; gone is closed when it fell too far behind.
type subscriber struct {
	ch   chan Event
	gone chan struct{}
	once sync.Once
}

// subscribe adds a listener; cancel removes it.
func (b *broker) subscribe() (sub *subscriber, cancel func()) {
	sub = &subscriber{ch: make(chan Event, eventBuffer), gone: make(chan struct{})}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = make(map[*subscriber]struct{})
	}
	b.subs[sub] = struct{}{}
	b.mu.Unlock()
	return sub, func() {
		b.mu.Lock()
		delete(b.subs, sub)
		b.mu.Unlock()
	}
}

// publish hands evs to every subscriber without blocking; a subscriber
// whose buffer is full is marked gone rather than silently missing events.
func (b *broker) publish(evs []Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.subs {
		for _, ev := range evs {
			select {
			case sub.ch <- ev:
			default:
				sub.once.Do(func() { close(sub.gone) })
			}
		}
	}
}
