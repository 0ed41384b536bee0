package msg

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg/sphinx"
)

// PublishedMix is a mix a directory node lists.
type PublishedMix struct {
	// Addr is where the mix listens, "NODEID@host:port"; the NodeID pins
	// the mix's key.
	Addr string
	// Layer is the mix's position in routes, 0 (entry) to Layers-1 (exit).
	Layer int
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Key is the directory node's key, which signs the directory. Required.
	Key ed25519.PrivateKey
	// Dialer fetches the mixes' key records. Required.
	Dialer *core.Dialer
	// Mixes are the mixes to list, at least one per layer. Required.
	Mixes []PublishedMix
	// Layers is the number of layers; zero means DefaultLayers.
	Layers int
	// EpochLength and EpochGrace are the mixnet's key epochs, as the mixes
	// have them; zero means DefaultEpochLength and DefaultEpochGrace.
	EpochLength, EpochGrace time.Duration
	// Clock returns the time; nil means time.Now.
	Clock func() time.Time
	// Logger receives the publisher's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Publisher is a directory node's mix directory: once per key epoch it
// collects each configured mix's signed key record of that epoch and
// signs the directory listing the mixes that answered. The directory of
// epoch e is valid from e's start until its end plus half the grace, so
// clients keep a valid one while the next is collected. The handler
// serves the latest (Config.Directory). It is safe for concurrent use.
type Publisher struct {
	cfg    PublisherConfig
	mixes  []publishedMix
	clock  func() time.Time
	logger *slog.Logger

	mu        sync.Mutex
	signed    []byte
	epoch     uint64
	published bool
}

// publishedMix is a parsed PublishedMix.
type publishedMix struct {
	id    core.NodeID
	addr  string // NODEID@host:port
	host  string // host:port
	layer int
}

// NewPublisher validates cfg and returns a publisher that has published
// nothing yet. It starts no goroutines: call Run, or Publish.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	var errs []error
	if len(cfg.Key) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("msg: PublisherConfig.Key: required"))
	}
	if cfg.Dialer == nil {
		errs = append(errs, errors.New("msg: PublisherConfig.Dialer: required"))
	}
	layers := cfg.Layers
	if layers == 0 {
		layers = DefaultLayers
	}
	if layers < 1 || layers > sphinx.MaxHops {
		return nil, fmt.Errorf("msg: PublisherConfig.Layers: %d, want 1 to %d", layers, sphinx.MaxHops)
	}
	p := &Publisher{cfg: cfg, clock: cfg.Clock, logger: cfg.Logger}
	seen := make([]bool, layers)
	for i, m := range cfg.Mixes {
		id, host, err := core.ParseAddr(m.Addr)
		if err != nil || id.IsZero() {
			errs = append(errs, fmt.Errorf("msg: PublisherConfig.Mixes[%d]: want NODEID@host:port", i))
			continue
		}
		if m.Layer < 0 || m.Layer >= layers {
			errs = append(errs, fmt.Errorf("msg: PublisherConfig.Mixes[%d]: layer %d outside 0..%d", i, m.Layer, layers-1))
			continue
		}
		seen[m.Layer] = true
		p.mixes = append(p.mixes, publishedMix{id: id, addr: m.Addr, host: host, layer: m.Layer})
	}
	for l, ok := range seen {
		if !ok {
			errs = append(errs, fmt.Errorf("msg: PublisherConfig.Mixes: no mix in layer %d", l))
		}
	}
	var err error
	p.cfg.EpochLength, p.cfg.EpochGrace, err = checkEpochs(cfg.EpochLength, cfg.EpochGrace)
	if err := errors.Join(append(errs, err)...); err != nil {
		return nil, err
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	return p, nil
}

// Signed returns the latest signed directory, nil before the first.
func (p *Publisher) Signed() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.signed
}

// mixKeyTimeout bounds fetching one mix's key record.
const mixKeyTimeout = 5 * time.Second

// Publish collects the key records of epoch from the mixes and signs the
// directory of that epoch. Mixes that do not answer, or answer with a
// record that does not verify, are left out (and logged); it fails if a
// layer is left empty, keeping the previous directory.
func (p *Publisher) Publish(ctx context.Context, epoch uint64) error {
	start := EpochStart(epoch, p.cfg.EpochLength)
	d := &MixDirectory{
		Issued:  start,
		Expires: start.Add(p.cfg.EpochLength + p.cfg.EpochGrace/2),
		Layers:  p.cfg.Layers,
	}
	for _, m := range p.mixes {
		rec, err := p.mixKey(ctx, m, epoch)
		if err != nil {
			p.logger.Warn("mix directory: mix left out", "mix", m.id.ShortString(), "err", err)
			continue
		}
		d.Mixes = append(d.Mixes, MixDescriptor{Node: m.id, Addr: m.host, Key: rec.Key, Layer: m.layer, Epoch: epoch})
	}
	b, err := d.Sign(p.cfg.Key)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.signed, p.epoch, p.published = b, epoch, true
	p.mu.Unlock()
	p.logger.Info("mix directory published", "epoch", epoch, "mixes", len(d.Mixes))
	return nil
}

// mixKey fetches and checks one mix's key record of epoch.
func (p *Publisher) mixKey(ctx context.Context, m publishedMix, epoch uint64) (MixKeyRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, mixKeyTimeout)
	defer cancel()
	s, err := Dial(ctx, p.cfg.Dialer, m.addr)
	if err != nil {
		return MixKeyRecord{}, err
	}
	defer s.Close()
	rec, err := s.MixKey(ctx, epoch)
	if err != nil {
		return MixKeyRecord{}, err
	}
	if rec.Node != m.id || rec.Epoch != epoch {
		return MixKeyRecord{}, errors.New("msg: mix key record for another mix or epoch")
	}
	return rec, nil
}

// Run publishes the directory of the current epoch, then of each epoch as
// it starts, until ctx ends, and returns ctx's error. A failed attempt is
// retried every tenth of the grace period (at most 10 s).
func (p *Publisher) Run(ctx context.Context) error {
	retry := min(p.cfg.EpochGrace/10, 10*time.Second)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		now := p.clock()
		e := EpochAt(now, p.cfg.EpochLength)
		wait := EpochStart(e+1, p.cfg.EpochLength).Sub(now)
		p.mu.Lock()
		done := p.published && p.epoch == e
		p.mu.Unlock()
		if !done {
			if err := p.Publish(ctx, e); err != nil {
				p.logger.Warn("mix directory not published", "epoch", e, "err", err)
				wait = min(wait, retry)
			}
		}
		t.Reset(wait)
	}
}

// DirectoryClient fetches the mix directory from directory nodes,
// verifies it and keeps it until it expires. It is safe for concurrent
// use; its fields must not change after the first call.
type DirectoryClient struct {
	// Dialer connects to the directory nodes. Required.
	Dialer *core.Dialer
	// Servers are the directory nodes, "NODEID@host:port", tried in order;
	// a directory is accepted only if one of their NodeIDs signed it.
	Servers []string
	// Clock returns the time; nil means time.Now.
	Clock func() time.Time

	mu  sync.Mutex
	dir *MixDirectory
}

// Get returns the cached directory while it is valid, else fetches one
// from the first server that serves a valid directory.
func (c *DirectoryClient) Get(ctx context.Context) (*MixDirectory, error) {
	clock := c.Clock
	if clock == nil {
		clock = time.Now
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir != nil && clock().Before(c.dir.Expires) {
		return c.dir, nil
	}
	trusted := make([]core.NodeID, 0, len(c.Servers))
	errs := []error{errors.New("msg: no mix directory")}
	for _, s := range c.Servers {
		id, _, err := core.ParseAddr(s)
		if err != nil || id.IsZero() {
			return nil, fmt.Errorf("msg: directory server %q: want NODEID@host:port", s)
		}
		trusted = append(trusted, id)
	}
	for _, addr := range c.Servers {
		d, err := fetchDirectory(ctx, c.Dialer, addr, trusted, clock)
		if err == nil {
			c.dir = d
			return d, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// fetchDirectory fetches and verifies the directory one server serves.
func fetchDirectory(ctx context.Context, d *core.Dialer, addr string, trusted []core.NodeID, clock func() time.Time) (*MixDirectory, error) {
	ctx, cancel := context.WithTimeout(ctx, mixKeyTimeout)
	defer cancel()
	s, err := Dial(ctx, d, addr)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	b, err := s.request(ctx, opDirectory, nil, 1+MaxDirectoryBytes)
	if err != nil {
		return nil, err
	}
	return ParseDirectory(b, trusted, clock())
}

// MixKey asks a mix for its signed key record of epoch (the current or
// the next) and verifies the signature.
func (s *Session) MixKey(ctx context.Context, epoch uint64) (MixKeyRecord, error) {
	b, err := s.request(ctx, opMixKey, binary.BigEndian.AppendUint64(nil, epoch), maxControlFrame)
	if err != nil {
		return MixKeyRecord{}, err
	}
	return ParseMixKeyRecord(b)
}
