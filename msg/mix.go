package msg

import (
	"bytes"
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
	"slices"
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
	// ErrReplay: the packet was seen before in its key epoch.
	ErrReplay = errors.New("msg: mix: replayed packet")
	// ErrMixBusy: the queue or the replay cache is full.
	ErrMixBusy = errors.New("msg: mix: busy")
)

// MixConfig configures a Mix.
type MixConfig struct {
	// Seed is the 32-byte mix key seed (the vault seed at [MixKeyPath]);
	// the key of epoch e is MixEpochKey(Seed, e). Required.
	Seed []byte
	// EpochLength is the length of a key epoch, the same on every mix and
	// directory node of the mixnet; zero means DefaultEpochLength.
	EpochLength time.Duration
	// EpochGrace is how long after an epoch starts the previous epoch's
	// key is still accepted, for packets built from the previous
	// directory; zero means DefaultEpochGrace (at most half the epoch).
	EpochGrace time.Duration
	// Dialer connects to the next hop and to exit destinations; its key is
	// this node's, which they must grant msg:relay, and signs the mix's key
	// records. Required, with a key.
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
	// MaxTags bounds the tags remembered per epoch; zero means
	// DefaultMaxTags. A full cache refuses packets (ErrMixBusy) until the
	// epoch ends.
	MaxTags int
	// CoverRate is the mean number of loop cover packets per second the
	// mix sends (a Poisson process) through a random route back to
	// itself; zero sends none.
	CoverRate float64
	// Directory returns the current mix directory, for the routes of
	// cover packets; required when CoverRate is set.
	Directory func(context.Context) (*MixDirectory, error)
	// Clock returns the time, which selects the key epoch; nil means
	// time.Now.
	Clock func() time.Time
	// Logger receives the mix's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Mix unwraps Sphinx packets, drops replays, delays each packet and
// forwards due packets in shuffled batches; it rotates its key every
// epoch and can send loop cover traffic. Accept is called by the
// alknet/msg handler; Run does the sending. It is safe for concurrent use.
type Mix struct {
	cfg    MixConfig
	id     core.NodeID
	clock  func() time.Time
	logger *slog.Logger

	mu     sync.Mutex
	epochs map[uint64]*mixEpoch // the current epoch, and the previous one during its grace
	loops  map[[IDSize]byte]time.Time
	queue  delayQueue
	rng    *rand.Rand
	stats  MixStats
}

// mixEpoch is the key of one epoch and the replay tags seen under it.
type mixEpoch struct {
	key  *ecdh.PrivateKey
	tags map[[32]byte]struct{}
}

// MixStats counts what a mix did: packets accepted, replays dropped,
// packets forwarded to a next mix, payloads delivered to a home node,
// packets that could not be sent or were refused by the next hop, loop
// cover packets sent, and own loops that came back and were dropped.
type MixStats struct {
	Accepted, Replays, Forwarded, Exited, Failed, Cover, Loops uint64
}

// Loop cover bounds: a loop not back within loopTTL is forgotten, and at
// most maxLoops are awaited at once.
const (
	loopTTL  = 10 * time.Minute
	maxLoops = 4096
)

// NewMix validates cfg and returns a mix. It starts no goroutines: call Run.
func NewMix(cfg MixConfig) (*Mix, error) {
	var errs []error
	if len(cfg.Seed) != KeySize {
		errs = append(errs, fmt.Errorf("msg: MixConfig.Seed: want %d bytes", KeySize))
	}
	if cfg.Dialer == nil || len(cfg.Dialer.Key) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("msg: MixConfig.Dialer: required, with a key"))
	}
	if cfg.Resolve == nil {
		errs = append(errs, errors.New("msg: MixConfig.Resolve: required"))
	}
	if cfg.BatchInterval < 0 || cfg.MaxQueue < 0 || cfg.MaxTags < 0 {
		errs = append(errs, errors.New("msg: MixConfig: negative batch interval or limit"))
	}
	if cfg.CoverRate < 0 || math.IsNaN(cfg.CoverRate) || math.IsInf(cfg.CoverRate, 0) || (cfg.CoverRate > 0 && cfg.Directory == nil) {
		errs = append(errs, errors.New("msg: MixConfig.CoverRate: want a finite rate ≥ 0, and a Directory when > 0"))
	}
	var err error
	cfg.EpochLength, cfg.EpochGrace, err = checkEpochs(cfg.EpochLength, cfg.EpochGrace)
	if err := errors.Join(append(errs, err)...); err != nil {
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
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	cfg.Seed = bytes.Clone(cfg.Seed)
	var seed [32]byte
	crand.Read(seed[:])
	return &Mix{
		cfg: cfg, id: nodeID(cfg.Dialer.Key), clock: clock, logger: cfg.Logger,
		epochs: make(map[uint64]*mixEpoch),
		loops:  make(map[[IDSize]byte]time.Time),
		rng:    rand.New(rand.NewChaCha8(seed)),
	}, nil
}

// liveEpochs brings the key epochs up to now and returns the numbers of
// the ones whose keys are accepted, current first; m.mu is held. Keys and
// tags of ended epochs are dropped.
func (m *Mix) liveEpochs() ([]uint64, error) {
	now := m.clock()
	cur := EpochAt(now, m.cfg.EpochLength)
	live := []uint64{cur}
	if cur > 0 && now.Before(EpochStart(cur, m.cfg.EpochLength).Add(m.cfg.EpochGrace)) {
		live = append(live, cur-1)
	}
	for e := range m.epochs {
		if !slices.Contains(live, e) {
			delete(m.epochs, e)
		}
	}
	for _, e := range live {
		if m.epochs[e] != nil {
			continue
		}
		k, err := MixEpochKey(m.cfg.Seed, e)
		if err != nil {
			return nil, err
		}
		m.epochs[e] = &mixEpoch{key: k, tags: make(map[[32]byte]struct{})}
	}
	return live, nil
}

// KeyRecord returns the mix's signed key record of epoch, which must be
// the current or the next one (a directory node collects the next one
// before the epoch starts).
func (m *Mix) KeyRecord(epoch uint64) (MixKeyRecord, error) {
	cur := EpochAt(m.clock(), m.cfg.EpochLength)
	if epoch != cur && epoch != cur+1 {
		return MixKeyRecord{}, fmt.Errorf("msg: mix: epoch %d is neither the current (%d) nor the next", epoch, cur)
	}
	k, err := MixEpochKey(m.cfg.Seed, epoch)
	if err != nil {
		return MixKeyRecord{}, err
	}
	return signMixKeyRecord(m.cfg.Dialer.Key, epoch, k.PublicKey()), nil
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

// Accept unwraps one layer of packet with the current epoch's key, or
// during the grace period the previous one's, and queues the result with
// its delay. Errors wrap sphinx.ErrMalformed, sphinx.ErrMAC (also for a
// key no longer accepted), sphinx.ErrTagged, ErrReplay or ErrMixBusy.
func (m *Mix) Accept(packet []byte) error {
	m.mu.Lock()
	live, err := m.liveEpochs()
	keys := make([]*ecdh.PrivateKey, len(live))
	for i, e := range live {
		keys[i] = m.epochs[e].key
	}
	m.mu.Unlock()
	if err != nil {
		return err
	}
	var r *sphinx.Result
	var epoch uint64
	for i, k := range keys {
		if r, err = sphinx.Unwrap(k, packet); !errors.Is(err, sphinx.ErrMAC) {
			epoch = live[i]
			break
		}
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ep := m.epochs[epoch]
	if ep == nil {
		return sphinx.ErrMAC // the epoch ended meanwhile
	}
	if _, seen := ep.tags[r.Tag]; seen {
		m.stats.Replays++
		return ErrReplay
	}
	if len(ep.tags) >= m.cfg.MaxTags || m.queue.Len() >= m.cfg.MaxQueue {
		return ErrMixBusy
	}
	ep.tags[r.Tag] = struct{}{}
	next, err := core.NodeIDFromPublicKey(r.Next[:])
	if err != nil {
		return sphinx.ErrMalformed
	}
	q := queued{next: next, t: opRelay, body: r.Packet}
	if r.Command != sphinx.Relay {
		q.t = opExit
		q.body = append(append(append([]byte{}, r.Next[:]...), r.SURBID[:]...), r.Payload...)
	}
	q.due = time.Now().Add(m.exp(m.cfg.MeanDelay))
	heap.Push(&m.queue, q)
	m.stats.Accepted++
	return nil
}

// exp draws an exponential duration of the given mean, at most 100 means;
// a negative mean means none. m.mu is held.
func (m *Mix) exp(mean time.Duration) time.Duration {
	if mean < 0 {
		return 0
	}
	d := -float64(mean) * math.Log(1-m.rng.Float64())
	return time.Duration(min(d, float64(100*mean)))
}

// Run sends due packets every batch interval, and cover packets at the
// configured rate, until ctx ends, then closes its connections and returns
// ctx's error. Packets still queued are dropped (a mix keeps nothing
// across restarts).
func (m *Mix) Run(ctx context.Context) error {
	sessions := make(map[core.NodeID]*Session)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		for _, s := range sessions {
			_ = s.Close()
		}
	}()
	if m.cfg.CoverRate > 0 {
		wg.Go(func() { m.cover(ctx) })
	}
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
// hosted recipient, a SURB reply for it, or one of this node's loop cover
// packets coming back.
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
	if to == h.id && h.cfg.Mix != nil && h.cfg.Mix.ownLoop(payload) {
		return nil, 0, "" // answered like any delivery, so the exit learns nothing
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

// cover sends loop cover packets at the configured Poisson rate until ctx
// ends.
func (m *Mix) cover(ctx context.Context) {
	mean := time.Duration(float64(time.Second) / m.cfg.CoverRate)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		m.mu.Lock()
		t.Reset(m.exp(mean))
		m.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := m.sendLoop(ctx); err != nil {
			m.logger.Debug("mix cover packet not sent", "err", err)
		}
	}
}

// coverEnvelopeBytes is the size of the smallest envelope, which a loop
// cover packet imitates.
const coverEnvelopeBytes = headerSize + 1<<10 + aeadOverhead

// sendLoop queues one loop cover packet over a random route of the
// directory that ends at this node. Its plaintext is one fragment of a
// random envelope addressed to this node, as a real one-fragment message
// to it is, so no hop can tell the two apart; the fragment's random id is
// remembered to recognize the loop when it comes back.
func (m *Mix) sendLoop(ctx context.Context) error {
	dir, err := m.cfg.Directory(ctx)
	if err != nil {
		return err
	}
	route, err := dir.Route()
	if err != nil {
		return err
	}
	env := make([]byte, coverEnvelopeBytes)
	env[0] = Version
	copy(env[1:], m.id.PublicKey())
	crand.Read(env[1+KeySize:])
	frags, err := fragment(env)
	if err != nil {
		return err
	}
	var dest [sphinx.IDSize]byte
	copy(dest[:], m.id.PublicKey())
	p, err := sphinx.NewPacket(hops(route), dest, frags[0])
	if err != nil {
		return err
	}
	m.mu.Lock()
	now := m.clock()
	for id, at := range m.loops {
		if now.Sub(at) > loopTTL {
			delete(m.loops, id)
		}
	}
	if len(m.loops) >= maxLoops || m.queue.Len() >= m.cfg.MaxQueue {
		m.mu.Unlock()
		return ErrMixBusy
	}
	m.loops[[IDSize]byte(frags[0])] = now
	m.stats.Cover++
	if route[0].Node == m.id {
		m.mu.Unlock()
		return m.Accept(p) // this mix is the entry: unwrap here
	}
	heap.Push(&m.queue, queued{due: time.Now(), next: route[0].Node, t: opRelay, body: p})
	m.mu.Unlock()
	return nil
}

// ownLoop reports whether an exit plaintext is one of this mix's loop
// cover packets coming back, and if so forgets and counts it.
func (m *Mix) ownLoop(plaintext []byte) bool {
	if len(plaintext) < IDSize {
		return false
	}
	id := [IDSize]byte(plaintext)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.loops[id]; !ok {
		return false
	}
	delete(m.loops, id)
	m.stats.Loops++
	m.logger.Debug("mix cover loop returned")
	return true
}
