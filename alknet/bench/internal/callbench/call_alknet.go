package callbench

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// Operations of the alknet call targets.
const (
	// echoOp answers its input (a Payload), decoded and encoded again.
	echoOp = "bench/echo"
	// eventsOp is a subscription sending {"n"} Payloads.
	eventsOp = "bench/events"
	// routeOp, on a head, passes calls through to echoOp on the worker
	// (call.RegisterRoute).
	routeOp = "bench/route"
	// routeEventsOp, on a head, streams eventsOp from the worker through
	// call.RegisterRoute.
	routeEventsOp = "bench/route-events"
)

// The identity IDs of the alknet call targets' directories.
const (
	clientID = "bench-client"
	workerID = "worker"
	headID   = "head"
)

// attachTimeout bounds the wait for a worker to attach to its head.
const attachTimeout = 10 * time.Second

// eventsIn is the input of eventsOp.
type eventsIn struct {
	N int `json:"n"`
}

// nodeRegistry returns the operations of a node that serves the calls
// itself: the built-ins, echoOp and eventsOp, open to any authenticated
// caller.
func nodeRegistry() (*call.Registry, error) {
	reg := call.NewRegistry()
	if err := call.RegisterBuiltins(reg, call.Info{}, nil); err != nil {
		return nil, err
	}
	err := call.Register(reg, call.Spec{Name: echoOp}, func(_ context.Context, _ *call.Request, in payload) (payload, error) {
		return in, nil
	})
	if err != nil {
		return nil, err
	}
	err = call.RegisterStream(reg, call.Spec{Name: eventsOp}, func(_ context.Context, _ *call.Request, in eventsIn, send func(payload) error) error {
		p := newPayload()
		for i := range in.N {
			p.ID = i
			if err := send(p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return reg, nil
}

// headRegistry returns the operations of a head: the built-ins with
// routing, and routeOp and routeEventsOp, which reach echoOp and eventsOp
// on the worker only.
func headRegistry(peers *call.Peers) (*call.Registry, error) {
	reg := call.NewRegistry()
	if err := call.RegisterBuiltins(reg, call.Info{}, peers); err != nil {
		return nil, err
	}
	// The head passes both through without decoding input or output:
	// it checks the caller's access and the route, the worker the input.
	worker := call.Specific(workerID)
	if err := call.RegisterRoute(reg, call.Spec{Name: routeOp}, worker, echoOp); err != nil {
		return nil, err
	}
	if err := call.RegisterRoute(reg, call.Spec{Name: routeEventsOp, Type: call.Subscription}, worker, eventsOp); err != nil {
		return nil, err
	}
	return reg, nil
}

// directory returns the identities of the given peers.
func directory(entries ...core.PeerEntry) (*core.LiveDirectory, error) {
	dir, err := core.NewDirectory(entries, nil)
	if err != nil {
		return nil, err
	}
	return core.NewLiveDirectory(dir, nil), nil
}

// peerEntry is a directory entry for key.
func peerEntry(id string, key ed25519.PrivateKey, scopes ...string) core.PeerEntry {
	return core.PeerEntry{ID: id, NodeIDs: []core.NodeID{harness.NodeID(key)}, Scopes: scopes}
}

// startNode serves h on 127.0.0.1 with key, knowing the given peers, until
// close; clientKey is recorded for the endpoint's dialer. Logs are
// discarded.
func startNode(key, clientKey ed25519.PrivateKey, ids core.IdentityProvider, h core.Handler) (*harness.Endpoint, error) {
	return startNodeAt(CallPlace{}, key, clientKey, ids, h)
}

// startNodeAt is startNode at place.
func startNodeAt(place CallPlace, key, clientKey ed25519.PrivateKey, ids core.IdentityProvider, h core.Handler) (*harness.Endpoint, error) {
	router, err := core.NewRouter(h)
	if err != nil {
		return nil, err
	}
	ep, err := core.New(core.Config{
		Addr:       net.JoinHostPort(place.addr(), "0"),
		Key:        key,
		Router:     router,
		Identities: ids,
		Limits:     harness.BenchLimits,
		Logger:     harness.Discard(),
	})
	if err != nil {
		return nil, err
	}
	if err := place.doListen(ep.Listen); err != nil {
		return nil, err
	}
	e := &harness.Endpoint{
		Ep:        ep,
		Addr:      ep.NodeID().String() + "@" + ep.Addr().String(),
		Port:      harness.PortOf(ep.Addr().String()),
		ClientKey: clientKey,
		Served:    make(chan error, 1),
	}
	go func() { e.Served <- ep.Serve(context.Background()) }()
	return e, nil
}

// newKeys returns n fresh keys.
func newKeys(n int) ([]ed25519.PrivateKey, error) {
	keys := make([]ed25519.PrivateKey, n)
	for i := range keys {
		var err error
		if keys[i], err = harness.NewKey(); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// alknetClient is a call.Client and the node or cluster it calls.
type alknetClient struct {
	c        *call.Client
	op       string // the echo operation called
	eventsOp string // the subscription called
	nodes    []*harness.Endpoint
	stopJoin func() // stops the worker's Join; nil for a lone node
	place    CallPlace
}

// startAlknet starts one node serving echoOp and eventsOp and dials it
// over QUIC (AlknetQUIC) or TCP+TLS (AlknetTCP).
func startAlknet(ctx context.Context, sys CallSystem, place CallPlace) (*alknetClient, error) {
	keys, err := newKeys(2)
	if err != nil {
		return nil, err
	}
	nodeKey, clientKey := keys[0], keys[1]
	a := &alknetClient{op: echoOp, eventsOp: eventsOp, place: place}
	if err := a.startNode(nodeKey, clientKey, nil, peerEntry(clientID, clientKey)); err != nil {
		return nil, errors.Join(err, a.close())
	}
	network := core.NetworkQUIC
	if sys == AlknetTCP {
		network = core.NetworkTCP
	}
	if err := a.dial(ctx, a.nodes[0], network); err != nil {
		return nil, errors.Join(err, a.close())
	}
	return a, nil
}

// startAlknetCluster starts a head and a worker node that joins it (over
// QUIC, with call.Join), and dials the head (routed) or the worker over
// QUIC. A routed client returns once the worker is attached.
func startAlknetCluster(ctx context.Context, routed bool) (*alknetClient, error) {
	keys, err := newKeys(3)
	if err != nil {
		return nil, err
	}
	headKey, workerKey, clientKey := keys[0], keys[1], keys[2]
	a := &alknetClient{op: echoOp, eventsOp: eventsOp}
	if routed {
		a.op, a.eventsOp = routeOp, routeEventsOp
	}
	peers := call.NewPeers(call.First, harness.Discard())
	if err := a.startNode(headKey, clientKey, peers, peerEntry(clientID, clientKey), peerEntry(workerID, workerKey, call.WorkerScope)); err != nil {
		return nil, errors.Join(err, a.close())
	}
	if err := a.startNode(workerKey, clientKey, nil, peerEntry(clientID, clientKey)); err != nil {
		return nil, errors.Join(err, a.close())
	}
	head, worker := a.nodes[0], a.nodes[1]
	if err := a.join(worker, workerKey, head, headKey); err != nil {
		return nil, errors.Join(err, a.close())
	}
	target := worker
	if routed {
		target = head
	}
	if err := a.dial(ctx, target, core.NetworkQUIC); err != nil {
		return nil, errors.Join(err, a.close())
	}
	if routed {
		if err := a.waitAttached(ctx); err != nil {
			return nil, errors.Join(err, a.close())
		}
	}
	return a, nil
}

// startNode starts a node serving the call protocol: a head when peers is
// set (headRegistry), else a node serving the calls (nodeRegistry).
func (a *alknetClient) startNode(key, clientKey ed25519.PrivateKey, peers *call.Peers, entries ...core.PeerEntry) error {
	var reg *call.Registry
	var err error
	if peers != nil {
		reg, err = headRegistry(peers)
	} else {
		reg, err = nodeRegistry()
	}
	if err != nil {
		return err
	}
	ids, err := directory(entries...)
	if err != nil {
		return err
	}
	h, err := call.New(call.Config{Registry: reg, Identities: ids, Peers: peers, Logger: harness.Discard()})
	if err != nil {
		return err
	}
	e, err := startNodeAt(a.place, key, clientKey, ids, h)
	if err != nil {
		return err
	}
	a.nodes = append(a.nodes, e)
	return nil
}

// join keeps worker joined to head with call.Join until stopJoin, serving
// the worker's operations on the joined connection.
func (a *alknetClient) join(worker *harness.Endpoint, workerKey ed25519.PrivateKey, head *harness.Endpoint, headKey ed25519.PrivateKey) error {
	reg, err := nodeRegistry()
	if err != nil {
		return err
	}
	ids, err := directory(peerEntry(headID, headKey))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = call.Join(ctx, head.Addr, call.Options{
			Dialer:     &core.Dialer{Key: workerKey, Network: core.NetworkQUIC, Logger: harness.Discard()},
			Registry:   reg,
			Identities: ids,
			Logger:     harness.Discard(),
		})
	}()
	a.stopJoin = func() {
		cancel()
		<-done
	}
	return nil
}

// dial connects the client to node over network.
func (a *alknetClient) dial(ctx context.Context, node *harness.Endpoint, network core.Network) error {
	var c *call.Client
	err := a.place.doDial(func() (err error) {
		c, err = call.Dial(ctx, node.Addr, call.Options{
			Dialer: &core.Dialer{Key: node.ClientKey, Network: network, Logger: harness.Discard()},
			Logger: harness.Discard(),
		})
		return err
	})
	if err != nil {
		return err
	}
	a.c = c
	return nil
}

// waitAttached calls routeOp until it answers: until then the head answers
// NOT_FOUND, the worker not being attached yet.
func (a *alknetClient) waitAttached(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	in := newPayload()
	for {
		var out payload
		err := a.c.Call(ctx, a.op, &in, &out)
		if err == nil {
			return nil
		}
		if !call.IsCode(err, call.CodeNotFound) || ctx.Err() != nil {
			return fmt.Errorf("worker not attached: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("worker not attached: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (a *alknetClient) call(ctx context.Context, in, out *payload) error {
	return a.c.Call(ctx, a.op, in, out)
}

// subscribe runs one subscription of n events, decoding each.
func (a *alknetClient) subscribe(ctx context.Context, n int) (int, error) {
	got := 0
	for ev, err := range a.c.Subscribe(ctx, a.eventsOp, eventsIn{N: n}) {
		if err != nil {
			return got, err
		}
		var p payload
		if err := json.Unmarshal(ev, &p); err != nil {
			return got, err
		}
		got++
	}
	return got, nil
}

// close closes the client, stops the worker's Join, then the nodes.
func (a *alknetClient) close() error {
	var errs []error
	if a.c != nil {
		errs = append(errs, a.c.Close())
	}
	if a.stopJoin != nil {
		a.stopJoin()
	}
	for i := len(a.nodes) - 1; i >= 0; i-- {
		errs = append(errs, a.nodes[i].Close())
	}
	return errors.Join(errs...)
}
