package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/config"
	"github.com/alkdev/alknet/msg"
	"github.com/alkdev/alknet/vault"
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
	// Mix is the [msg.mix] section.
	Mix msgMixConfig `toml:"mix"`
}

// msgMixConfig is the [msg.mix] section: this node as a mix.
type msgMixConfig struct {
	// Enabled makes the node relay Sphinx packets (opt-in). Default false.
	Enabled bool `toml:"enabled"`
	// Epoch numbers the mix key (the messaging key) in the directory.
	// Default 0.
	Epoch uint64 `toml:"epoch"`
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
	m := c.Mix
	if m.BatchInterval.Duration < 0 || m.MaxQueue < 0 {
		errs = append(errs, errors.New("msg.mix: batch_interval and max_queue must not be negative"))
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

// resolveHome returns the delivery address of a recipient from msg.homes.
func (c *msgConfig) resolveHome(id core.NodeID) (string, error) {
	if a, ok := c.Homes[id.String()]; ok {
		return a, nil
	}
	return "", fmt.Errorf("no address for %s: add it to msg.homes or give NODEID@HOST:PORT", id.ShortString())
}

// resolveMix returns the address of a next mix or destination home node:
// msg.mix.routes, then msg.homes.
func (c *msgConfig) resolveMix(id core.NodeID) (string, error) {
	if a, ok := c.Mix.Routes[id.String()]; ok {
		return id.String() + "@" + a, nil
	}
	return c.resolveHome(id)
}

// accessOf is an AccessControl needing scopes, or def when none are set.
func accessOf(scopes []string, def string) *core.AccessControl {
	if len(scopes) == 0 {
		scopes = []string{def}
	}
	return &core.AccessControl{AllScopes: scopes}
}

// buildMsg makes the msg handler with its inbox, registers the msg call
// operations, and, when [msg.mix] is enabled, the mix.
func buildMsg(n *node, _ []string) (core.Handler, error) {
	c := n.cfg.Msg
	path := c.Inbox
	if path == "" {
		path = filepath.Join(n.dataDir, "msg", "inbox.db")
	}
	var hosted []msg.KeyRecord
	for _, h := range c.Hosted {
		r, err := msg.ParseKeyRecordText(h)
		if err != nil {
			return nil, err
		}
		hosted = append(hosted, r)
	}
	var mix *msg.Mix
	if c.Mix.Enabled {
		var err error
		mix, err = msg.NewMix(msg.MixConfig{
			Key: n.msgKey, Epoch: c.Mix.Epoch,
			Dialer: &core.Dialer{Key: n.key}, Resolve: c.resolveMix,
			MeanDelay: c.Mix.MeanDelay.Duration, BatchInterval: c.Mix.BatchInterval.Duration,
			MaxQueue: c.Mix.MaxQueue, Logger: n.logger,
		})
		if err != nil {
			return nil, err
		}
	}
	inbox, err := msg.OpenInbox(msg.InboxConfig{Path: path, MaxCount: c.InboxMaxCount, MaxBytes: c.InboxMaxBytes, TTL: c.InboxTTL.Duration})
	if err != nil {
		return nil, err
	}
	h, err := msg.New(msg.Config{
		NodeKey: n.key, Key: n.msgKey, Inbox: inbox, Hosted: hosted,
		Deposit: accessOf(c.DepositScopes, msg.SendScope), Relay: accessOf(c.RelayScopes, msg.RelayScope),
		Mix: mix, MaxBodyBytes: c.MaxBodyBytes, Skew: c.Skew.Duration, Logger: n.logger,
	})
	if err == nil {
		err = h.RegisterOps(n.calls, msg.OpsConfig{
			Access: accessOf(c.OpsScopes, msg.AdminScope), Dialer: &core.Dialer{Key: n.key}, Resolve: c.resolveHome,
		})
	}
	if err != nil {
		inbox.Close()
		return nil, err
	}
	n.background(func(ctx context.Context) error {
		<-ctx.Done()
		return inbox.Close()
	})
	if mix != nil {
		n.background(mix.Run)
	}
	return h, nil
}

// nodeKeys opens the vault once and returns the node key and the X25519
// messaging key derived at msg.KeyPath.
func nodeKeys(c *cli.Context, dir string) (ed25519.PrivateKey, *ecdh.PrivateKey, error) {
	v, err := openVault(c, dir, true, c.App.ErrWriter)
	if err != nil {
		return nil, nil, err
	}
	defer v.Close()
	key, err := v.NodeKey()
	if err != nil {
		return nil, nil, err
	}
	p, err := vault.ParsePath(msg.KeyPath)
	if err != nil {
		return nil, nil, err
	}
	k, err := v.Derive(p)
	if err != nil {
		return nil, nil, err
	}
	defer k.Wipe()
	mk, err := msg.NewKey(k.PrivateKey().Seed())
	return key, mk, err
}
