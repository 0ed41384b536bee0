package scalebench

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// WorkersOptions configures [MeasureWorkers].
type WorkersOptions struct {
	// Binary is the alknet executable; required.
	Binary string
	// Workers are the head sizes compared, one head each (e.g. 2 and 200).
	Workers []int
	// Rounds of Calls routed calls each, interleaved over the heads; zero
	// means 5 rounds of 200.
	Rounds, Calls int
	// Progress, if set, receives a line of progress now and then.
	Progress func(string)
}

// WorkersResult is one head's routed calls and memory.
type WorkersResult struct {
	// Workers is how many workers were attached.
	Workers int
	// Latencies are the routed calls' round trips, each to the next worker
	// in turn, pooled over the rounds; One are as many calls, all to the
	// first worker, which tells the head's per-worker work (finding the
	// worker) from the cost of spreading calls over many connections.
	Latencies, One []time.Duration
	// Idle is the head's VmRSS before any worker attached, Attached with
	// every worker attached, After at the end of the calls, in bytes.
	Idle, Attached, After int64
	// Attach is how long the workers took to attach.
	Attach time.Duration
}

// P50 returns the median routed call.
func (r WorkersResult) P50() time.Duration { return harness.Percentile(r.Latencies, 50) }

// echoOp is the workers' operation: it answers its input.
const echoOp = "bench/echo"

// attachTimeout bounds the wait for a head's workers to attach.
const attachTimeout = 2 * time.Minute

// MeasureWorkers starts one `alknet serve` head per entry of opts.Workers
// and attaches that many workers to it, each an in-process call client
// with a key of its own on a connection of its own, serving bench/echo to
// the head (what `alknet serve --join` does, without a process each).
// Then a client granted call:route calls peers/call on each head, round
// by round, each call to the next worker in turn, and the heads' memory
// is read; calls to the first worker alternate with them. Heads and workers are stopped at the end.
func MeasureWorkers(ctx context.Context, opts WorkersOptions) ([]WorkersResult, error) {
	rounds := cmpOr(opts.Rounds, 5)
	calls := cmpOr(opts.Calls, 200)
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	heads := make([]*head, 0, len(opts.Workers))
	defer func() {
		for _, h := range heads {
			h.close()
		}
	}()
	for _, w := range opts.Workers {
		if w < 1 {
			return nil, fmt.Errorf("bench: scale: %d workers: want at least 1", w)
		}
		h, err := startHead(ctx, opts.Binary, w)
		if err != nil {
			return nil, err
		}
		heads = append(heads, h)
		progress(fmt.Sprintf("scale workers: head with %d workers attached in %v, RSS %d MiB", w, h.res.Attach.Round(time.Millisecond), h.res.Attached>>20))
	}
	in := map[string]string{"message": "0123456789abcdefghijklmnopqrstuvwxyz0123456789ab"}
	for r := range rounds {
		for i := range heads {
			h := heads[(i+r)%len(heads)]
			for i := range 2 * calls {
				peer := h.names[0] // alternately the first worker and the next in turn
				if i%2 == 0 {
					peer = h.names[h.next%len(h.names)]
					h.next++
				}
				d, err := h.routedCall(ctx, peer, in)
				if err != nil {
					return nil, fmt.Errorf("bench: scale: head with %d workers: routed call: %w", h.res.Workers, err)
				}
				if i%2 == 0 {
					h.res.Latencies = append(h.res.Latencies, d)
				} else {
					h.res.One = append(h.res.One, d)
				}
			}
		}
		progress(fmt.Sprintf("scale workers: round %d of %d done", r+1, rounds))
	}
	results := make([]WorkersResult, 0, len(heads))
	var errs []error
	for _, h := range heads {
		var err error
		h.res.After, err = h.node.rss()
		errs = append(errs, err)
		results = append(results, h.res)
	}
	for _, h := range heads {
		errs = append(errs, h.close())
	}
	heads = nil
	return results, errors.Join(errs...)
}

// head is an `alknet serve` with its workers and a routing client.
type head struct {
	node    *node
	client  *call.Client
	workers []*call.Client
	names   []string
	next    int
	res     WorkersResult
	once    sync.Once
	err     error
}

// startHead starts a head whose config knows a client (call:route) and w
// workers (call:worker), attaches the workers and waits until the head
// lists them all.
func startHead(ctx context.Context, binary string, w int) (*head, error) {
	_, clientKey, _ := ed25519.GenerateKey(nil)
	clientID, _ := core.NodeIDFromPublicKey(clientKey.Public().(ed25519.PublicKey))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[limits]\nmax_conns_per_ip = %d\n\n", w+connSlack)
	fmt.Fprintf(&cfg, "[[peers]]\nid = \"client\"\nkeys = [%q]\nscopes = [%q]\n\n", clientID.String(), call.RouteScope)
	keys := make([]ed25519.PrivateKey, w)
	h := &head{res: WorkersResult{Workers: w}}
	for i := range w {
		_, keys[i], _ = ed25519.GenerateKey(nil)
		id, _ := core.NodeIDFromPublicKey(keys[i].Public().(ed25519.PublicKey))
		name := fmt.Sprintf("w%04d", i)
		h.names = append(h.names, name)
		fmt.Fprintf(&cfg, "[[peers]]\nid = %q\nkeys = [%q]\nscopes = [%q]\n\n", name, id.String(), call.WorkerScope)
	}
	n, err := startNode(ctx, binary, "", cfg.String())
	if err != nil {
		return nil, err
	}
	h.node = n
	if err := harness.Sleep(ctx, time.Second); err != nil {
		return nil, errors.Join(err, h.close())
	}
	if h.res.Idle, err = n.rss(); err != nil {
		return nil, errors.Join(err, h.close())
	}
	// The workers know the head as an identity, so its calls to them are
	// authenticated.
	dir, err := core.NewDirectory([]core.PeerEntry{{ID: "head", NodeIDs: []core.NodeID{n.id}}}, nil)
	if err != nil {
		return nil, errors.Join(err, h.close())
	}
	ids := core.NewLiveDirectory(dir, nil)
	reg, err := workerRegistry()
	if err != nil {
		return nil, errors.Join(err, h.close())
	}
	start := time.Now()
	actx, cancel := context.WithTimeout(ctx, attachTimeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	sem := make(chan struct{}, 16)
	for i := range w {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c, err := call.Dial(actx, n.addr, call.Options{
				Dialer:     &core.Dialer{Key: keys[i], Network: core.NetworkQUIC, Logger: harness.Discard()},
				Registry:   reg,
				Identities: ids,
				Logger:     harness.Discard(),
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("worker %d: %w", i, err))
				return
			}
			h.workers = append(h.workers, c)
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, errors.Join(fmt.Errorf("bench: scale: %d of %d workers did not connect: %w", len(errs), w, errs[0]), h.close())
	}
	h.client, err = call.Dial(actx, n.addr, call.Options{
		Dialer: &core.Dialer{Key: clientKey, Network: core.NetworkQUIC, Logger: harness.Discard()},
		Logger: harness.Discard(),
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bench: scale: routing client: %w", err), h.close())
	}
	if err := h.waitAttached(actx, w); err != nil {
		return nil, errors.Join(err, h.close())
	}
	h.res.Attach = time.Since(start)
	if h.res.Attached, err = n.rss(); err != nil {
		return nil, errors.Join(err, h.close())
	}
	return h, nil
}

// workerRegistry holds the built-ins (the head lists a worker's
// operations with services/list) and the workers' one operation.
func workerRegistry() (*call.Registry, error) {
	reg := call.NewRegistry()
	if err := call.RegisterBuiltins(reg, call.Info{}, nil); err != nil {
		return nil, err
	}
	err := call.Register(reg, call.Spec{Name: echoOp, Description: "answers its input"},
		func(_ context.Context, _ *call.Request, in map[string]string) (map[string]string, error) {
			return in, nil
		})
	return reg, err
}

// waitAttached polls services/list-peers until the head lists w peers.
func (h *head) waitAttached(ctx context.Context, w int) error {
	for {
		var peers []call.PeerOps
		err := h.client.Call(ctx, "services/list-peers", nil, &peers)
		if err == nil && len(peers)-1 >= w { // the first entry is the head's own
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("bench: scale: head lists %d of %d workers after %v (%v)", max(len(peers)-1, 0), w, attachTimeout, err)
		}
		if err := harness.Sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("bench: scale: head lists %d of %d workers after %v", max(len(peers)-1, 0), w, attachTimeout)
		}
	}
}

// callTimeout bounds one routed call.
const callTimeout = 10 * time.Second

// routedCall calls echoOp on the worker peer through the head, as `alknet
// call --peer WORKER` does, and returns its round trip.
func (h *head) routedCall(ctx context.Context, peer string, in map[string]string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var out map[string]string
	start := time.Now()
	err := h.client.Call(ctx, "peers/call", map[string]any{"operationId": echoOp, "peer": peer, "input": in}, &out)
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("to %s: %w", peer, err)
	}
	if out["message"] != in["message"] {
		return d, fmt.Errorf("to %s: answer %v, want the input back", peer, out)
	}
	return d, nil
}

// close closes the client and workers and stops the node, once.
func (h *head) close() error {
	h.once.Do(func() {
		var errs []error
		if h.client != nil {
			errs = append(errs, h.client.Close())
		}
		for _, w := range h.workers {
			errs = append(errs, w.Close())
		}
		if h.node != nil {
			errs = append(errs, h.node.stop())
		}
		h.err = errors.Join(errs...)
	})
	return h.err
}
