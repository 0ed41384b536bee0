package msg

import (
	"container/heap"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg/sphinx"
)

// Mix defaults.
const (
	// DefaultMeanDelay is the mean of a packet's exponential delay when the
	// configured one is zero.
	DefaultMeanDelay = 50 * time.Millisecond
	// DefaultBatchInterval is how often due packets leave, as one shuffled
	// batch, when the configured interval is zero.
	DefaultBatchInterval = 10 * time.Millisecond
	// DefaultMaxQueue bounds the packets waiting in a mix.
	DefaultMaxQueue = 10000
	// DefaultMaxTags bounds the replay tags remembered in one key epoch.
	DefaultMaxTags = 1 << 18
)

// Errors of Mix.Accept, matched with errors.Is.
var (
	// ErrReplay: the packet was seen before in this key epoch.
	ErrReplay = errors.New("msg: mix: replayed packet")
	// ErrMixBusy: the queue or the replay cache is full.
	ErrMixBusy = errors.New("msg: mix: busy")
)

// MixConfig configures a Mix.
type MixConfig struct {
	// Key is the X25519 mix key of Epoch, as listed in the directory.
	// Required.
	Key *ecdh.PrivateKey
	// Epoch numbers Key; replay tags are remembered per epoch.
	Epoch uint64
	// Dialer connects to the next hop and to exit destinations; its key is
	// this node's, which they must grant msg:relay. Required.
	Dialer *core.Dialer
	// Resolve returns the address ("NODEID@host:port") of a next mix or of
	// a destination's home node. Required.
	Resolve func(core.NodeID) (string, error)
	// MeanDelay is the mean of each packet's exponential delay; zero means
	// DefaultMeanDelay, negative means none.
	MeanDelay time.Duration
	// BatchInterval is how often due packets are sent, shuffled, as one
	// batch; zero means DefaultBatchInterval.
	BatchInterval time.Duration
	// MaxQueue bounds waiting packets; zero means DefaultMaxQueue.
	MaxQueue int
	// MaxTags bounds remembered tags; zero means DefaultMaxTags. A full
	// cache refuses packets (ErrMixBusy) until the next epoch.
	MaxTags int
	// Logger receives the mix's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Mix unwraps Sphinx packets, drops replays, delays each packet and
// forwards due packets in shuffled batches. Accept is called by the
// alknet/msg handler; Run does the sending. It is safe for concurrent use.
type Mix struct {
	cfg    MixConfig
	logger *slog.Logger

	mu    sync.Mutex
	key   *ecdh.PrivateKey
	epoch uint64
	tags  map[[32]byte]struct{}
	queue delayQueue
	rng   *rand.Rand
	wake  chan struct{}
	stats MixStats
}

// MixStats counts what a mix did: packets accepted, replays dropped,
// packets forwarded to a next mix, payloads delivered to a home node, and
// packets that could not be sent or were refused by the next hop.
type MixStats struct {
	Accepted, Replays, Forwarded, Exited, Failed uint64
}

// NewMix validates cfg and returns a mix. It starts no goroutines: call Run.
func NewMix(cfg MixConfig) (*Mix, error) {
	var errs []error
	if cfg.Key == nil || cfg.Key.Curve() != ecdh.X25519() {
		errs = append(errs, errors.New("msg: MixConfig.Key: want an X25519 key"))
	}
	if cfg.Dialer == nil {
		errs = append(errs, errors.New("msg: MixConfig.Dialer: required"))
	}
	if cfg.Resolve == nil {
		errs = append(errs, errors.New("msg: MixConfig.Resolve: required"))
	}
	if cfg.BatchInterval < 0 || cfg.MaxQueue < 0 || cfg.MaxTags < 0 {
		errs = append(errs, errors.New("msg: MixConfig: negative batch interval or limit"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.MeanDelay == 0 {
		cfg.MeanDelay = DefaultMeanDelay
	}
	if cfg.BatchInterval == 0 {
		cfg.BatchInterval = DefaultBatchInterval
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = DefaultMaxQueue
	}
	if cfg.MaxTags == 0 {
		cfg.MaxTags = DefaultMaxTags
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var seed [32]byte
	crand.Read(seed[:])
	return &Mix{
		cfg: cfg, logger: cfg.Logger,
		key: cfg.Key, epoch: cfg.Epoch,
		tags: make(map[[32]byte]struct{}),
		rng:  rand.New(rand.NewChaCha8(seed)),
		wake: make(chan struct{}, 1),
	}, nil
}

// SetKey starts a new key epoch: packets for the old key fail from now
// on, and the old epoch's replay tags are forgotten.
func (m *Mix) SetKey(key *ecdh.PrivateKey, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.key, m.epoch = key, epoch
	m.tags = make(map[[32]byte]struct{})
}

// Stats returns the counters.
func (m *Mix) Stats() MixStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// queued is a packet waiting for its time.
type queued struct {
	due  time.Time
	next core.NodeID
	t    op // opRelay or opExit
	body []byte
}

// delayQueue is a min-heap by due time.
type delayQueue []queued

func (q delayQueue) Len() int           { return len(q) }
func (q delayQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q delayQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *delayQueue) Push(x any)        { *q = append(*q, x.(queued)) }
func (q *delayQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// Accept unwraps one layer of packet and queues the result with its
// delay. Errors wrap sphinx.ErrMalformed, sphinx.ErrMAC,
// sphinx.ErrTagged, ErrReplay or ErrMixBusy.
func (m *Mix) Accept(packet []byte) error {
	m.mu.Lock()
	key := m.key
	m.mu.Unlock()
	r, err := sphinx.Unwrap(key, packet)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if key != m.key {
		return sphinx.ErrMAC // the epoch changed meanwhile
	}
	if _, seen := m.tags[r.Tag]; seen {
		m.stats.Replays++
		return ErrReplay
	}
	if len(m.tags) >= m.cfg.MaxTags || m.queue.Len() >= m.cfg.MaxQueue {
		return ErrMixBusy
	}
	m.tags[r.Tag] = struct{}{}
	next, err := core.NodeIDFromPublicKey(r.Next[:])
	if err != nil {
		return sphinx.ErrMalformed
	}
	q := queued{next: next, t: opRelay, body: r.Packet}
	if r.Command != sphinx.Relay {
		q.t = opExit
		q.body = append(append(append([]byte{}, r.Next[:]...), r.SURBID[:]...), r.Payload...)
	}
	q.due = time.Now().Add(m.delay())
	heap.Push(&m.queue, q)
	m.stats.Accepted++
	return nil
}

// delay draws an exponential delay; m.mu is held.
func (m *Mix) delay() time.Duration {
	if m.cfg.MeanDelay < 0 {
		return 0
	}
	d := -float64(m.cfg.MeanDelay) * math.Log(1-m.rng.Float64())
	return time.Duration(min(d, float64(100*m.cfg.MeanDelay)))
}

// Run sends due packets every batch interval until ctx ends, then closes
// its connections and returns ctx's error. Packets still queued are
// dropped (a mix keeps nothing across restarts).
func (m *Mix) Run(ctx context.Context) error {
	sessions := make(map[core.NodeID]*Session)
	defer func() {
		for _, s := range sessions {
			_ = s.Close()
		}
	}()
	t := time.NewTicker(m.cfg.BatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			m.sendBatch(ctx, sessions, m.due(now))
		}
	}
}

// due pops the packets due by now, shuffled.
func (m *Mix) due(now time.Time) []queued {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []queued
	for m.queue.Len() > 0 && !m.queue[0].due.After(now) {
		out = append(out, heap.Pop(&m.queue).(queued))
	}
	m.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// sendBatch sends a batch, one goroutine per next hop, and waits.
func (m *Mix) sendBatch(ctx context.Context, sessions map[core.NodeID]*Session, batch []queued) {
	if len(batch) == 0 {
		return
	}
	byNext := make(map[core.NodeID][]queued)
	var order []core.NodeID
	for _, q := range batch {
		if _, ok := byNext[q.next]; !ok {
			order = append(order, q.next)
		}
		byNext[q.next] = append(byNext[q.next], q)
	}
	type result struct {
		next core.NodeID
		s    *Session
	}
	results := make(chan result, len(order))
	var wg sync.WaitGroup
	for _, next := range order {
		s := sessions[next]
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- result{next, m.sendTo(ctx, s, next, byNext[next])}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.s == nil {
			delete(sessions, r.next)
		} else {
			sessions[r.next] = r.s
		}
	}
}

// sendTo sends packets to one next hop over s (dialing when nil) and
// returns the session to keep, nil if it broke.
func (m *Mix) sendTo(ctx context.Context, s *Session, next core.NodeID, qs []queued) *Session {
	ctx, cancel := context.WithTimeout(ctx, sessionTimeout)
	defer cancel()
	var sent, exited, failed uint64
	defer func() {
		m.mu.Lock()
		m.stats.Forwarded += sent
		m.stats.Exited += exited
		m.stats.Failed += failed
		m.mu.Unlock()
	}()
	if s == nil {
		addr, err := m.cfg.Resolve(next)
		if err == nil {
			s, err = Dial(ctx, m.cfg.Dialer, addr)
		}
		if err != nil {
			failed += uint64(len(qs))
			m.logger.Warn("mix next hop unreachable", "packets", len(qs))
			return nil
		}
	}
	for i, q := range qs {
		var err error
		if q.t == opRelay {
			err = s.relay(ctx, q.body)
		} else {
			err = s.exit(ctx, q.body)
		}
		var re *RemoteError
		switch {
		case err == nil && q.t == opRelay:
			sent++
		case err == nil:
			exited++
		case errors.As(err, &re):
			failed++
			m.logger.Debug("mix packet refused by next hop", "status", re.Status.String())
		default:
			failed += uint64(len(qs) - i)
			m.logger.Warn("mix forward failed", "packets", len(qs)-i)
			_ = s.Close()
			return nil
		}
	}
	return s
}

// relayStatus maps an Accept error to the status the sender sees.
func relayStatus(err error) Status {
	switch {
	case errors.Is(err, ErrMixBusy):
		return StatusQuota
	case errors.Is(err, ErrReplay):
		return StatusDuplicate
	}
	return StatusRejected
}

// exit takes a payload from an exit mix: a fragment of an envelope for a
// hosted recipient, or a SURB reply for it.
func (h *Handler) exit(body []byte) ([]byte, Status, string) {
	const fixed = sphinx.IDSize + sphinx.SURBIDSize
	if len(body) < fixed {
		return nil, StatusMalformed, "short exit payload"
	}
	to, err := core.NodeIDFromPublicKey(body[:sphinx.IDSize])
	if err != nil {
		return nil, StatusMalformed, "bad destination"
	}
	if _, ok := h.hosted[to]; !ok {
		return nil, StatusNotHosted, "recipient not hosted here"
	}
	surbID, payload := body[sphinx.IDSize:fixed], body[fixed:]
	if [sphinx.SURBIDSize]byte(surbID) != ([sphinx.SURBIDSize]byte{}) {
		if len(payload) != sphinx.PayloadSize {
			return nil, StatusMalformed, "bad reply payload"
		}
		_, err := h.cfg.Inbox.Deposit(to, KindReply, body[sphinx.IDSize:])
		return nil, depositStatus(err), reasonOf(err)
	}
	env, err := h.frags.add(to, payload)
	if err != nil {
		return nil, StatusMalformed, "bad fragment"
	}
	if env == nil {
		return nil, 0, ""
	}
	return h.deliver(env)
}

// SendMixnet seals m to the recipient's key and sends it through the
// mixnet: one packet per fragment, each on its own route from dir, each
// delivered by the exit mix to m.To's home node. d dials the entry mixes,
// which must grant its key msg:relay. It returns the message as sealed.
func SendMixnet(ctx context.Context, d *core.Dialer, dir *MixDirectory, sender ed25519.PrivateKey, to *ecdh.PublicKey, m Message) (Message, error) {
	frags, m, err := sealFragments(sender, to, m)
	if err != nil {
		return m, err
	}
	var dest [sphinx.IDSize]byte
	copy(dest[:], m.To.PublicKey())
	packets := make(map[core.NodeID][][]byte)
	for _, f := range frags {
		route, err := dir.Route()
		if err != nil {
			return m, err
		}
		p, err := sphinx.NewPacket(hops(route), dest, f)
		if err != nil {
			return m, err
		}
		packets[route[0].Node] = append(packets[route[0].Node], p)
	}
	for entry, ps := range packets {
		if err := sendPackets(ctx, d, dir, entry, ps); err != nil {
			return m, err
		}
	}
	return m, nil
}

// sealFragments seals m and splits the envelope into Sphinx plaintexts.
func sealFragments(sender ed25519.PrivateKey, to *ecdh.PublicKey, m Message) ([][]byte, Message, error) {
	env, m, err := Seal(sender, to, m)
	if err != nil {
		return nil, m, err
	}
	frags, err := fragment(env)
	return frags, m, err
}

// sendPackets hands packets to one entry mix.
func sendPackets(ctx context.Context, d *core.Dialer, dir *MixDirectory, entry core.NodeID, ps [][]byte) error {
	addr, ok := dir.Addr(entry)
	if !ok {
		return fmt.Errorf("msg: mix %s not in the directory", entry.ShortString())
	}
	s, err := Dial(ctx, d, addr)
	if err != nil {
		return err
	}
	defer s.Close()
	for _, p := range ps {
		if err := s.relay(ctx, p); err != nil {
			return fmt.Errorf("msg: entry mix: %w", err)
		}
	}
	return nil
}

// NewReplyBlock makes a SURB over a fresh route from dir that brings a
// reply to self's inbox (at self's home node), and the keys to read it.
// Keep the keys; hand the SURB (MarshalBinary) to the other side.
func NewReplyBlock(dir *MixDirectory, self core.NodeID) (*sphinx.SURB, *sphinx.SURBKeys, error) {
	route, err := dir.Route()
	if err != nil {
		return nil, nil, err
	}
	var dest [sphinx.IDSize]byte
	copy(dest[:], self.PublicKey())
	return sphinx.NewSURB(hops(route), dest)
}

// SendReply seals m to the SURB maker's messaging key and sends it
// through the SURB: the sender learns neither the route nor where the
// reply goes. The envelope must fit one packet (bodies up to about 850
// bytes).
func SendReply(ctx context.Context, d *core.Dialer, dir *MixDirectory, surb *sphinx.SURB, sender ed25519.PrivateKey, to *ecdh.PublicKey, m Message) (Message, error) {
	frags, m, err := sealFragments(sender, to, m)
	if err != nil {
		return m, err
	}
	if len(frags) != 1 {
		return m, fmt.Errorf("msg: reply of %d fragments does not fit one packet", len(frags))
	}
	p, err := surb.Packet(frags[0])
	if err != nil {
		return m, err
	}
	entry, err := core.NodeIDFromPublicKey(surb.FirstHop[:])
	if err != nil {
		return m, err
	}
	return m, sendPackets(ctx, d, dir, entry, [][]byte{p})
}

// ReplyEnvelope opens a KindReply inbox entry with the SURB's keys and
// returns the envelope inside, to open with an [Opener].
func ReplyEnvelope(keys *sphinx.SURBKeys, data []byte) ([]byte, error) {
	if len(data) != sphinx.SURBIDSize+sphinx.PayloadSize || [sphinx.SURBIDSize]byte(data) != keys.ID {
		return nil, errors.New("msg: reply is not for this SURB")
	}
	pt, err := keys.Open(data[sphinx.SURBIDSize:])
	if err != nil {
		return nil, err
	}
	env, err := newReassembler(time.Now).add(core.NodeID{}, pt)
	if err != nil || env == nil {
		return nil, errors.New("msg: malformed reply")
	}
	return env, nil
}
