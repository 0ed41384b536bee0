package bench

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

// benchLimits are the endpoint limits of every benchmark server: the
// defaults, except that one client IP may hold many connections, since all
// the load comes from 127.0.0.1 and connections being torn down still count.
var benchLimits = core.Limits{MaxConnsPerIP: 1 << 16, MaxConns: 1 << 16}

// shutdownTimeout bounds the stop of a benchmark endpoint.
const shutdownTimeout = 10 * time.Second

// endpoint is a core.Endpoint on 127.0.0.1 that knows one client key, with
// the perf scope.
type endpoint struct {
	ep        *core.Endpoint
	addr      string // "<nodeid>@127.0.0.1:<port>"
	port      int
	clientKey ed25519.PrivateKey
	served    chan error
}

// newKey returns a fresh Ed25519 key.
func newKey() (ed25519.PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("bench: generate key: %w", err)
	}
	return key, nil
}

// nodeID returns the NodeID of key.
func nodeID(key ed25519.PrivateKey) core.NodeID {
	id, _ := core.NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	return id
}

// startEndpoint serves handlers on 127.0.0.1 with fresh node and client
// keys until close. Logs are discarded.
func startEndpoint(handlers ...core.Handler) (*endpoint, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	clientKey, err := newKey()
	if err != nil {
		return nil, err
	}
	dir, err := core.NewDirectory([]core.PeerEntry{{
		ID:      "bench-client",
		NodeIDs: []core.NodeID{nodeID(clientKey)},
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
		Limits:     benchLimits,
		Logger:     slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := ep.Listen(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	e := &endpoint{
		ep:        ep,
		addr:      ep.NodeID().String() + "@" + ep.Addr().String(),
		port:      portOf(ep.Addr().String()),
		clientKey: clientKey,
		served:    make(chan error, 1),
	}
	go func() { e.served <- ep.Serve(context.Background()) }()
	return e, nil
}

// close shuts the endpoint down and waits for Serve to return.
func (e *endpoint) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := e.ep.Shutdown(ctx)
	if serr := <-e.served; !errors.Is(serr, core.ErrEndpointClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("bench: endpoint shutdown: %w", err)
	}
	return nil
}

// dialer returns a dialer presenting the client key over network.
func (e *endpoint) dialer(network core.Network) *core.Dialer {
	return &core.Dialer{Key: e.clientKey, Network: network, Logger: slog.New(slog.DiscardHandler)}
}
