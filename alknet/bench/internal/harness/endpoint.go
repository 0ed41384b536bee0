package harness

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/perf"
)

// BenchLimits are the endpoint limits of every benchmark server: the
// defaults, except that one client IP may hold many connections, since all
// the load comes from 127.0.0.1 and connections being torn down still count.
var BenchLimits = core.Limits{MaxConnsPerIP: 1 << 16, MaxConns: 1 << 16}

// ShutdownTimeout bounds the stop of a benchmark endpoint.
const ShutdownTimeout = 10 * time.Second

// Endpoint is a core.Endpoint on 127.0.0.1 that knows one client key, with
// the perf scope.
type Endpoint struct {
	Ep        *core.Endpoint
	Addr      string // "<nodeid>@127.0.0.1:<port>"
	Port      int
	ClientKey ed25519.PrivateKey
	Served    chan error
}

// NewKey returns a fresh Ed25519 key.
func NewKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bench: generate key: %w", err)
	}
	return key, nil
}

// NodeID returns the NodeID of key.
func NodeID(key ed25519.PrivateKey) core.NodeID {
	id, _ := core.NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	return id
}

// StartEndpoint serves handlers on 127.0.0.1 with fresh node and client
// keys until close. Logs are discarded.
func StartEndpoint(handlers ...core.Handler) (*Endpoint, error) {
	key, err := NewKey()
	if err != nil {
		return nil, err
	}
	clientKey, err := NewKey()
	if err != nil {
		return nil, err
	}
	dir, err := core.NewDirectory([]core.PeerEntry{{
		ID:      "bench-client",
		NodeIDs: []core.NodeID{NodeID(clientKey)},
		Scopes:  []string{perf.Scope},
	}}, nil)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	router, err := core.NewRouter(handlers...)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	ep, err := core.New(core.Config{
		Addr:       "127.0.0.1:0",
		Key:        key,
		Router:     router,
		Identities: core.NewLiveDirectory(dir, nil),
		Limits:     BenchLimits,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := ep.Listen(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	e := &Endpoint{
		Ep:        ep,
		Addr:      ep.NodeID().String() + "@" + ep.Addr().String(),
		Port:      PortOf(ep.Addr().String()),
		ClientKey: clientKey,
		Served:    make(chan error, 1),
	}
	go func() { e.Served <- ep.Serve(context.Background()) }()
	return e, nil
}

// Close shuts the endpoint down and waits for Serve to return.
func (e *Endpoint) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := e.Ep.Shutdown(ctx)
	if serr := <-e.Served; !errors.Is(serr, core.ErrEndpointClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("bench: endpoint shutdown: %w", err)
	}
	return nil
}

// Dialer returns a dialer presenting the client key over network.
func (e *Endpoint) Dialer(network core.Network) *core.Dialer {
	return &core.Dialer{Key: e.ClientKey, Network: network, Logger: slog.New(slog.DiscardHandler)}
}

// Discard is the logger of every benchmark component.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
