package dns

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"time"

	"github.com/alkdev/alknet/core"
)

// DefaultRepublishInterval is how often a [Publisher] signs and publishes
// again when nothing changed.
const DefaultRepublishInterval = time.Hour

// publishRetryMin is the first retry delay after a failed turn; it doubles
// up to the republish interval.
const publishRetryMin = time.Minute

// PublisherConfig configures a [Publisher].
type PublisherConfig struct {
	// Key is the node key; required.
	Key ed25519.PrivateKey
	// Info returns what to publish now; required.
	Info func() NodeInfo
	// Local, if set, receives every packet (the node's own store).
	Local *Store
	// Homes are alknet addresses ("[nodeid@]host:port") to publish to over
	// alknet/dns.
	Homes []string
	// DHT, if set, also receives every packet (a BEP 44 put on the
	// Mainline DHT; items there expire after about two hours, so the
	// interval must stay well under that).
	DHT *DHT
	// Dialer dials the homes; nil: an anonymous dialer.
	Dialer *core.Dialer
	// Interval is the republish period. Zero: DefaultRepublishInterval.
	Interval time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives failures; nil means slog.Default().
	Logger *slog.Logger
}

// Publisher keeps a node's self-description published: to its own store,
// its home nodes and the DHT, at start, after [Publisher.Refresh] when the
// info changed, and every Interval. A failed turn is retried after a
// minute, then after twice as long each time, up to Interval.
type Publisher struct {
	cfg     PublisherConfig
	refresh chan struct{}
	// retryMin is the first retry delay; publishRetryMin but in tests.
	retryMin time.Duration
}

// NewPublisher validates cfg. It starts nothing; [Publisher.Run] does.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	var errs []error
	if len(cfg.Key) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("key: an Ed25519 node key is required"))
	}
	if cfg.Info == nil {
		errs = append(errs, errors.New("info: required"))
	}
	if cfg.Local == nil && len(cfg.Homes) == 0 && cfg.DHT == nil {
		errs = append(errs, errors.New("no local store, home node or DHT to publish to"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(errors.New("dns: publisher"), err)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRepublishInterval
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &core.Dialer{}
	}
	return &Publisher{cfg: cfg, refresh: make(chan struct{}, 1), retryMin: publishRetryMin}, nil
}

// Refresh asks the running publisher to publish again if the info changed.
// It never blocks.
func (p *Publisher) Refresh() {
	select {
	case p.refresh <- struct{}{}:
	default:
	}
}

// Run publishes at once, then on Refresh and every Interval, until ctx
// ends; it returns ctx's error. Failures are logged and retried (see
// [Publisher]).
func (p *Publisher) Run(ctx context.Context) error {
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	var last NodeInfo
	var delay time.Duration
	published := false
	for {
		info := p.cfg.Info()
		if !published || !info.Equal(last) {
			published = p.PublishOnce(ctx, info) == nil
			last = info
			if published {
				delay = 0
			} else {
				delay = min(max(2*delay, p.retryMin), p.cfg.Interval)
				retry.Reset(delay)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.refresh:
		case <-tick.C:
			published = false
		case <-retry.C:
		}
	}
}

// PublishOnce signs info now and publishes it to the local store, the DHT
// and every home; it returns the first failure after trying them all.
func (p *Publisher) PublishOnce(ctx context.Context, info NodeInfo) error {
	sp, err := SignSelf(p.cfg.Key, info, p.cfg.Clock())
	if err != nil {
		p.cfg.Logger.Error("dns: signing the self-description", "err", err)
		return err
	}
	var errs []error
	if p.cfg.Local != nil {
		if err := p.cfg.Local.Put(sp, Precondition{}); err != nil {
			p.cfg.Logger.Warn("dns: storing the self-description", "err", err)
			errs = append(errs, err)
		}
	}
	if p.cfg.DHT != nil {
		if err := p.cfg.DHT.Publish(ctx, sp); err != nil {
			p.cfg.Logger.Warn("dns: publishing the self-description to the DHT", "err", err)
			errs = append(errs, err)
		}
	}
	for _, home := range p.cfg.Homes {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := Publish(cctx, p.cfg.Dialer, home, sp)
		cancel()
		if err != nil {
			p.cfg.Logger.Warn("dns: publishing the self-description to a home node", "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
