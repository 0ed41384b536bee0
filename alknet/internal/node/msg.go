package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg"
)

// msgConfig is the [msg] section: end-to-end messages and inboxes
// (alknet/msg); the user guide is docs/msg.md. Static: a change needs a
// restart.
type msgConfig struct {
	// Inbox is the inbox database file; absolute. Default
	// "<data-dir>/msg/inbox.db".
	Inbox string `toml:"inbox"`
	// MaxBodyBytes caps message bodies. Default 1048576 (1 MiB).
	MaxBodyBytes int `toml:"max_body_bytes"`
	// Skew is the accepted clock difference of envelopes. Default 5m.
	Skew config.Duration `toml:"skew"`
	// InboxMaxCount caps the stored messages of one recipient. Default 10000.
	InboxMaxCount int `toml:"inbox_max_count"`
	// InboxMaxBytes caps the stored bytes of one recipient. Default
	// 268435456 (256 MiB).
	InboxMaxBytes int64 `toml:"inbox_max_bytes"`
	// InboxTTL is how long an unacknowledged message is kept. Default 336h.
	InboxTTL config.Duration `toml:"inbox_ttl"`
	// DepositScopes are the scopes an identity needs to deliver messages
	// here. Default ["msg:send"].
	DepositScopes []string `toml:"deposit_scopes"`
	// RelayScopes are the scopes an identity needs to hand mix packets and
	// exit payloads here. Default ["msg:relay"].
	RelayScopes []string `toml:"relay_scopes"`
	// OpsScopes are the scopes the call operations msg/send, msg/inbox,
	// msg/ack and msg/watch need. Default ["admin"].
	OpsScopes []string `toml:"ops_scopes"`
	// Hosted are the key records ("alkmsgkey1:…", from `alknet msg key`)
	// of the other recipients whose messages this node keeps. Default none.
	Hosted []string `toml:"hosted"`
	// Homes map a recipient's NodeID to the address its messages are
	// delivered at ("<nodeid>@host:port": its home node, or itself), for
	// `alknet msg send NODEID` and msg/send. Default none.
	Homes map[string]string `toml:"homes"`
	// Directories are the directory nodes ("<nodeid>@host:port") the mix
	// directory is fetched from, for `alknet msg send --mixnet`, cover
	// traffic and this mix's next hops; a directory is accepted only if
	// signed by one of their NodeIDs. Default none.
	Directories []string `toml:"directories"`
	// EpochLength is the length of a mix key epoch; it must be the same on
	// every mix and directory node of the mixnet. Default 1h.
	EpochLength config.Duration `toml:"epoch_length"`
	// EpochGrace is how long after an epoch starts a mix still accepts the
	// previous epoch's key, less than epoch_length. Default 10m.
	EpochGrace config.Duration `toml:"epoch_grace"`
	// Mix is the [msg.mix] section.
	Mix msgMixConfig `toml:"mix"`
	// Directory is the [msg.directory] section.
	Directory msgDirectoryConfig `toml:"directory"`
}

// msgDirectoryConfig is the [msg.directory] section: this node as a
// directory node, publishing the signed mix directory.
type msgDirectoryConfig struct {
	// Publish makes the node collect the key records of the mixes below
	// every key epoch, sign the directory with its node key and serve it
	// on alknet/msg. Default false.
	Publish bool `toml:"publish"`
	// Layers is the number of mix layers of a route. Default 3.
	Layers int `toml:"layers"`
	// Mixes are the mixes listed, at least one per layer. Default none.
	Mixes []msgDirectoryMix `toml:"mixes"`
}

// msgDirectoryMix is one [[msg.directory.mixes]] entry: a mix the
// directory lists.
type msgDirectoryMix struct {
	// Addr is where the mix listens, "<nodeid>@host:port" (required).
	Addr string `toml:"addr"`
	// Layer is its position in routes, 0 (entry) to layers-1 (exit).
	// Default 0.
	Layer int `toml:"layer"`
}

// msgMixConfig is the [msg.mix] section: this node as a mix.
type msgMixConfig struct {
	// Enabled makes the node relay Sphinx packets (opt-in). Default false.
	Enabled bool `toml:"enabled"`
	// CoverRate is the mean number of loop cover packets per second the
	// mix sends through a random route back to itself (needs
	// msg.directories). Default 0 (none).
	CoverRate float64 `toml:"cover_rate"`
	// MeanDelay is the mean of each packet's exponential delay. Default
	// 50ms; negative: none.
	MeanDelay config.Duration `toml:"mean_delay"`
	// BatchInterval is how often due packets leave in a shuffled batch.
	// Default 10ms.
	BatchInterval config.Duration `toml:"batch_interval"`
	// MaxQueue bounds the packets waiting. Default 10000.
	MaxQueue int `toml:"max_queue"`
	// Routes map NodeIDs of next mixes and of recipients' home nodes to
	// "host:port". Default none.
	Routes map[string]string `toml:"routes"`
}

// validate reports every problem of the section.
func (c *msgConfig) validate() error {
	var errs []error
	if c.Inbox != "" && !filepath.IsAbs(c.Inbox) {
		errs = append(errs, fmt.Errorf("msg.inbox: %q is not an absolute path", c.Inbox))
	}
	if c.MaxBodyBytes < 0 || c.InboxMaxCount < 0 || c.InboxMaxBytes < 0 {
		errs = append(errs, errors.New("msg: max_body_bytes, inbox_max_count and inbox_max_bytes must not be negative"))
	}
	if c.Skew.Duration < 0 || c.InboxTTL.Duration < 0 {
		errs = append(errs, errors.New("msg: skew and inbox_ttl must not be negative"))
	}
	for i, h := range c.Hosted {
		if _, err := msg.ParseKeyRecordText(h); err != nil {
			errs = append(errs, fmt.Errorf("msg.hosted[%d]: %w", i, err))
		}
	}
	for id, addr := range c.Homes {
		if _, err := core.ParseNodeID(id); err != nil {
			errs = append(errs, fmt.Errorf("msg.homes: key %q: %w", id, err))
		}
		if home, _, err := core.ParseAddr(addr); err != nil || home.IsZero() {
			errs = append(errs, fmt.Errorf("msg.homes.%s: want <nodeid>@host:port", id))
		}
	}
	for i, a := range c.Directories {
		if id, _, err := core.ParseAddr(a); err != nil || id.IsZero() {
			errs = append(errs, fmt.Errorf("msg.directories[%d]: want <nodeid>@host:port", i))
		}
	}
	if err := msg.CheckEpochs(c.EpochLength.Duration, c.EpochGrace.Duration); err != nil {
		errs = append(errs, fmt.Errorf("msg: epoch_length, epoch_grace: %w", err))
	}
	m := c.Mix
	if m.BatchInterval.Duration < 0 || m.MaxQueue < 0 {
		errs = append(errs, errors.New("msg.mix: batch_interval and max_queue must not be negative"))
	}
	if m.CoverRate < 0 || (m.CoverRate > 0 && (!m.Enabled || len(c.Directories) == 0)) {
		errs = append(errs, errors.New("msg.mix.cover_rate: want ≥ 0, and above 0 only with msg.mix.enabled and msg.directories"))
	}
	if c.Directory.Publish {
		// Checked with a throwaway key; the node's own signs.
		if _, err := c.publisher(&core.Dialer{Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}, nil); err != nil {
			errs = append(errs, fmt.Errorf("msg.directory: %w", err))
		}
	}
	for id, addr := range m.Routes {
		if _, err := core.ParseNodeID(id); err != nil {
			errs = append(errs, fmt.Errorf("msg.mix.routes: key %q: %w", id, err))
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("msg.mix.routes.%s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// ResolveHome returns the delivery address of a recipient from msg.homes.
func (c *msgConfig) ResolveHome(id core.NodeID) (string, error) {
	if a, ok := c.Homes[id.String()]; ok {
		return a, nil
	}
	return "", fmt.Errorf("no address for %s: add it to msg.homes or give NODEID@HOST:PORT", id.ShortString())
}

// publisher makes the directory publisher of [msg.directory], signing
// with d's key.
func (c *msgConfig) publisher(d *core.Dialer, logger *slog.Logger) (*msg.Publisher, error) {
	mixes := make([]msg.PublishedMix, len(c.Directory.Mixes))
	for i, m := range c.Directory.Mixes {
		mixes[i] = msg.PublishedMix{Addr: m.Addr, Layer: m.Layer}
	}
	return msg.NewPublisher(msg.PublisherConfig{
		Key: d.Key, Dialer: d, Mixes: mixes, Layers: c.Directory.Layers,
		EpochLength: c.EpochLength.Duration, EpochGrace: c.EpochGrace.Duration, Logger: logger,
	})
}

// DirectoryClient fetches the mix directory from msg.directories; nil
// when none are configured.
func (c *msgConfig) DirectoryClient(d *core.Dialer) *msg.DirectoryClient {
	if len(c.Directories) == 0 {
		return nil
	}
	return &msg.DirectoryClient{Dialer: d, Servers: c.Directories}
}

// mixResolver returns the address of a next mix or destination home node:
// msg.mix.routes, then the mix directory (when dirs is set), then
// msg.homes.
func (c *msgConfig) mixResolver(dirs *msg.DirectoryClient) func(core.NodeID) (string, error) {
	return func(id core.NodeID) (string, error) {
		if a, ok := c.Mix.Routes[id.String()]; ok {
			return id.String() + "@" + a, nil
		}
		if dirs != nil {
			ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
			defer cancel()
			if d, err := dirs.Get(ctx); err == nil {
				if a, ok := d.Addr(id); ok {
					return a, nil
				}
			}
		}
		return c.ResolveHome(id)
	}
}

// directoryTimeout bounds a mix's fetch of the mix directory when it looks
// up a next hop.
const directoryTimeout = 15 * time.Second

// accessOf is an AccessControl needing scopes, or def when none are set.
func accessOf(scopes []string, def string) *core.AccessControl {
	if len(scopes) == 0 {
		scopes = []string{def}
	}
	return &core.AccessControl{AllScopes: scopes}
}

// buildMsg makes the msg handler with its inbox, registers the msg call
// operations, and, when [msg.mix] is enabled, the mix.
func buildMsg(n *node) (part, error) {
	c := n.cfg.Msg
	path := c.Inbox
	if path == "" {
		path = filepath.Join(n.dataDir, "msg", "inbox.db")
	}
	var hosted []msg.KeyRecord
	for _, h := range c.Hosted {
		r, err := msg.ParseKeyRecordText(h)
		if err != nil {
			return part{}, err
		}
		hosted = append(hosted, r)
	}
	dialer := &core.Dialer{Key: n.key}
	var mix *msg.Mix
	if c.Mix.Enabled {
		dirs := c.DirectoryClient(dialer)
		cfg := msg.MixConfig{
			Seed: n.mixSeed, EpochLength: c.EpochLength.Duration, EpochGrace: c.EpochGrace.Duration,
			Dialer: dialer, Resolve: c.mixResolver(dirs),
			MeanDelay: c.Mix.MeanDelay.Duration, BatchInterval: c.Mix.BatchInterval.Duration,
			MaxQueue: c.Mix.MaxQueue, CoverRate: c.Mix.CoverRate, Logger: n.logger,
		}
		if dirs != nil {
			cfg.Directory = dirs.Get
		}
		var err error
		if mix, err = msg.NewMix(cfg); err != nil {
			return part{}, err
		}
	}
	var pub *msg.Publisher
	if c.Directory.Publish {
		var err error
		if pub, err = c.publisher(dialer, n.logger); err != nil {
			return part{}, err
		}
	}
	inbox, err := msg.OpenInbox(msg.InboxConfig{Path: path, MaxCount: c.InboxMaxCount, MaxBytes: c.InboxMaxBytes, TTL: c.InboxTTL.Duration})
	if err != nil {
		return part{}, err
	}
	h, err := msg.New(msg.Config{
		NodeKey: n.key, Key: n.msgKey, Inbox: inbox, Hosted: hosted,
		Deposit: accessOf(c.DepositScopes, msg.SendScope), Relay: accessOf(c.RelayScopes, msg.RelayScope),
		Mix: mix, Directory: pub, MaxBodyBytes: c.MaxBodyBytes, Skew: c.Skew.Duration, Logger: n.logger,
	})
	if err == nil {
		err = h.RegisterOps(n.calls, msg.OpsConfig{
			Access: accessOf(c.OpsScopes, msg.AdminScope), Dialer: dialer, Resolve: c.ResolveHome,
		})
	}
	if err != nil {
		return part{}, errors.Join(err, inbox.Close())
	}
	p := part{handler: h, closers: []func() error{inbox.Close}}
	if mix != nil {
		p.tasks = append(p.tasks, mix.Run)
	}
	if pub != nil {
		p.tasks = append(p.tasks, pub.Run)
	}
	return p, nil
}
