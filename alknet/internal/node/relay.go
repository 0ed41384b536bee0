package node

import (
	"fmt"
	"time"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// relayConfig is the [relay] section: the relay a head serves
// (alknet/relay, docs/protocols/relay.md), through which clients granted
// the relay scope reach the workers that joined it, on any ALPN, with TLS
// end to end. A worker registers with the scope call:worker, the one
// --join needs; a client needs relay (every worker) or relay:<nodeid>
// (that worker). Static.
type relayConfig struct {
	// MaxStreamsPerWorker caps the relayed connections open at once to one
	// worker, over all clients; more are refused as busy. Default 64;
	// 1..65536.
	MaxStreamsPerWorker int `toml:"max_streams_per_worker"`
	// AcceptTimeout bounds the wait for a worker to take a relayed
	// connection; the client is then refused as unavailable. Default
	// "10s"; at least 100ms.
	AcceptTimeout config.Duration `toml:"accept_timeout"`
	// NoListen stops a node started with serve --join from registering
	// with its head, so that no client reaches it through the head.
	// Default false: a joined node is reachable through its head.
	NoListen bool `toml:"no_listen"`
}

func (c *relayConfig) validate() error {
	if c.MaxStreamsPerWorker < 0 || c.MaxStreamsPerWorker > 1<<16 {
		return fmt.Errorf("relay.max_streams_per_worker: %d out of range 1..65536", c.MaxStreamsPerWorker)
	}
	if d := c.AcceptTimeout.Duration; d < 0 || d > 0 && d < 100*time.Millisecond {
		return fmt.Errorf("relay.accept_timeout: %v is below the minimum 100ms", d)
	}
	return nil
}

// buildRelay makes the head's relay handler.
func buildRelay(n *node) (part, error) {
	c := n.cfg.Relay
	worker := core.AccessControl{AllScopes: []string{call.WorkerScope}}
	h, err := core.NewRelayServer(core.RelayConfig{
		MayListen:           worker.Check,
		MayConnect:          core.RelayAccess,
		MaxStreamsPerWorker: c.MaxStreamsPerWorker,
		AcceptTimeout:       c.AcceptTimeout.Duration,
		Logger:              n.logger,
	})
	if err != nil {
		return part{}, err
	}
	if n.status != nil { // nil in tests that build without running
		n.status.relay.Store(h)
	}
	return part{handler: h}, nil
}
