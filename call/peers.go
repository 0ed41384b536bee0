package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
)

// WorkerScope is the scope that makes a connecting identity a worker of a
// head: its operations are imported and it is attached as a peer.
const WorkerScope = "call:worker"

// PeerRef selects the peer a routed call goes to: [Specific] or [Any].
type PeerRef struct {
	peer string
	any  bool
}

// Specific routes to one peer, by its identity ID. The call fails with
// NOT_FOUND if that peer is not attached or lacks the operation; it never
// falls through to another peer.
func Specific(peerID string) PeerRef { return PeerRef{peer: peerID} }

// Any routes to an attached peer chosen by the head's selection policy,
// trying the next one when the chosen peer's connection is gone.
func Any() PeerRef { return PeerRef{any: true} }

// String returns the peer ID, or "any".
func (r PeerRef) String() string {
	if r.any {
		return "any"
	}
	return r.peer
}

// Policy is how [Any] picks a peer.
type Policy int

// Selection policies.
const (
	// First picks the earliest attached peer that has the operation.
	First Policy = iota
	// RoundRobin rotates over the peers that have the operation.
	RoundRobin
)

// Peers is a head's set of attached workers, shared by every connection:
// a call arriving on any connection can reach every attached worker. It is
// safe for concurrent use.
type Peers struct {
	policy Policy
	logger *slog.Logger

	mu    sync.Mutex
	peers []*peer          // in attach order
	byID  map[string]*peer // the same, by identity ID: a Specific call looks up one
	rr    atomic.Uint64
}

// peer is one attached worker and the operations it exposes.
type peer struct {
	id   string
	sess *session
	ops  map[string]Spec
}

// NewPeers returns an empty peer set using policy for [Any]. logger may be
// nil (slog.Default()).
func NewPeers(policy Policy, logger *slog.Logger) *Peers {
	if logger == nil {
		logger = slog.Default()
	}
	return &Peers{policy: policy, logger: logger, byID: map[string]*peer{}}
}

// attach imports a worker's operations, attaches it until ctx ends, then
// detaches it. A worker that reconnects replaces its old attachment.
func (ps *Peers) attach(ctx context.Context, id string, s *session) {
	ops, err := importOps(ctx, s)
	if err != nil {
		ps.logger.Warn("call: peer import failed; not attached", "peer", id, "err", err)
		return
	}
	p := &peer{id: id, sess: s, ops: ops}
	ps.mu.Lock()
	ps.peers = slices.DeleteFunc(ps.peers, func(o *peer) bool { return o.id == id })
	ps.peers = append(ps.peers, p)
	ps.byID[id] = p
	ps.mu.Unlock()
	ps.logger.Info("call: peer attached", "peer", id, "ops", len(ops))
	<-ctx.Done()
	ps.mu.Lock()
	ps.peers = slices.DeleteFunc(ps.peers, func(o *peer) bool { return o == p })
	if ps.byID[id] == p {
		delete(ps.byID, id)
	}
	ps.mu.Unlock()
	ps.logger.Info("call: peer detached", "peer", id)
}

// ListedOp is one entry of services/list.
type ListedOp struct {
	Name        string `json:"name"`
	Type        OpType `json:"type"`
	Description string `json:"description,omitempty"`
}

// importOps fetches a peer's operations and their specs. The same name
// listed twice is an error.
func importOps(ctx context.Context, s *session) (map[string]Spec, error) {
	var list []ListedOp
	if err := s.call(ctx, "services/list", nil, nil, &list); err != nil {
		return nil, fmt.Errorf("services/list: %w", err)
	}
	ops := make(map[string]Spec, len(list))
	for _, l := range list {
		if _, dup := ops[l.Name]; dup {
			return nil, fmt.Errorf("operation %q listed twice", l.Name)
		}
		var spec Spec
		if err := s.call(ctx, "services/schema", map[string]string{"name": l.Name}, nil, &spec); err != nil {
			return nil, fmt.Errorf("services/schema %s: %w", l.Name, err)
		}
		if spec.Name != l.Name {
			return nil, fmt.Errorf("services/schema %s answered for %q", l.Name, spec.Name)
		}
		ops[l.Name] = spec
	}
	return ops, nil
}

// specific returns the attached peer id if it has op, else nil.
func (ps *Peers) specific(id, op string) *peer {
	ps.mu.Lock()
	p := ps.byID[id]
	ps.mu.Unlock()
	if p == nil {
		return nil
	}
	if _, ok := p.ops[op]; !ok {
		return nil
	}
	return p
}

// candidates returns the peers Any may use for op, in policy order.
func (ps *Peers) candidates(op string) []*peer {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var out []*peer
	for _, p := range ps.peers {
		if _, ok := p.ops[op]; !ok {
			continue
		}
		out = append(out, p)
	}
	if ps.policy == RoundRobin && len(out) > 1 {
		k := int(ps.rr.Add(1)-1) % len(out)
		out = append(out[k:], out[:k]...)
	}
	return out
}

// start begins op on the peer ref selects. For Any, a peer whose
// connection is gone is skipped.
func (ps *Peers) start(ctx context.Context, ref PeerRef, op string, input json.RawMessage, fwd *Forwarded) (*session, *pending, error) {
	if !ref.any {
		// One peer, looked up without a list of candidates: a head
		// routing to named workers does this for every call.
		p := ps.specific(ref.peer, op)
		if p == nil {
			return nil, nil, Errorf(CodeNotFound, "operation not found on peer %s: %s", ref, op)
		}
		pend, err := p.startOn(ctx, op, input, fwd)
		if err != nil {
			return nil, nil, Errorf(CodeUnavailable, "no peer reachable for %s: %v", op, err)
		}
		return p.sess, pend, nil
	}
	cands := ps.candidates(op)
	if len(cands) == 0 {
		return nil, nil, Errorf(CodeNotFound, "operation not found on peer %s: %s", ref, op)
	}
	var last error
	for _, p := range cands {
		pend, err := p.startOn(ctx, op, input, fwd)
		if err == nil {
			return p.sess, pend, nil
		}
		last = err
	}
	return nil, nil, Errorf(CodeUnavailable, "no peer reachable for %s: %v", op, last)
}

// startOn begins op on the peer.
func (p *peer) startOn(ctx context.Context, op string, input json.RawMessage, fwd *Forwarded) (*pending, error) {
	pend, err := p.sess.start(ctx, op, input, "", fwd)
	if err != nil {
		return nil, err
	}
	// The worker's own spec, imported when it attached, says whether its
	// first answer ends the call.
	pend.once = p.ops[op].Type != Subscription
	return pend, nil
}

// PeerOps is one peer's entry in services/list-peers.
type PeerOps struct {
	Peer string     `json:"peer"`
	Ops  []ListedOp `json:"ops"`
}

// List returns the attached peers and their operations, as
// services/list-peers shows them after the node's own.
func (ps *Peers) List() []PeerOps {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make([]PeerOps, 0, len(ps.peers))
	for _, p := range ps.peers {
		e := PeerOps{Peer: p.id}
		for _, s := range p.ops {
			e.Ops = append(e.Ops, ListedOp{Name: s.Name, Type: s.Type, Description: s.Description})
		}
		slices.SortFunc(e.Ops, func(a, b ListedOp) int { return cmpString(a.Name, b.Name) })
		out = append(out, e)
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// forwarded is what a routed call tells the worker about the end user.
func forwarded(r *Request) *Forwarded {
	if r.ForwardedFor != nil {
		return r.ForwardedFor
	}
	if r.Caller == nil {
		return nil
	}
	return &Forwarded{ID: r.Caller.ID, Scopes: r.Caller.Scopes}
}

// reachable checks that this request's operation may reach op on ref.
func (r *Request) reachable(ref PeerRef, op string) error {
	if r.srv.peers == nil || !r.spec.Reach.allows(ref, op) {
		return Errorf(CodeNotFound, "operation not reachable from %s: %s on peer %s", r.Op, op, ref)
	}
	return nil
}

// CallPeer calls a query or mutation on a peer of this head and decodes its
// output into out (if not nil). The operation's Reach must allow it. The
// worker checks access against the head's identity; the caller travels as
// forwarded_for. Cancelling ctx aborts the remote call.
func (r *Request) CallPeer(ctx context.Context, ref PeerRef, op string, in, out any) error {
	if err := r.reachable(ref, op); err != nil {
		return err
	}
	// Whether the peer's operation is replay-safe is the peer's to say:
	// from 0-RTT data, a peer call waits for the handshake.
	if err := r.waitHandshake(ctx, false); err != nil {
		return err
	}
	raw, err := json.Marshal(in)
	if err != nil {
		return Errorf(CodeInvalidInput, "encode input: %v", err)
	}
	s, p, err := r.srv.peers.start(ctx, ref, op, raw, forwarded(r))
	if err != nil {
		return err
	}
	return s.finishCall(ctx, p, out)
}

// SubscribePeer runs a subscription on a peer of this head and yields its
// outputs; see CallPeer. Stopping the iteration aborts the remote call.
func (r *Request) SubscribePeer(ctx context.Context, ref PeerRef, op string, in any) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		if err := r.reachable(ref, op); err != nil {
			yield(nil, err)
			return
		}
		if err := r.waitHandshake(ctx, false); err != nil {
			yield(nil, err)
			return
		}
		raw, err := json.Marshal(in)
		if err != nil {
			yield(nil, Errorf(CodeInvalidInput, "encode input: %v", err))
			return
		}
		s, p, err := r.srv.peers.start(ctx, ref, op, raw, forwarded(r))
		if err != nil {
			yield(nil, err)
			return
		}
		s.stream(ctx, p, yield)
	}
}

// call runs a query or mutation on the session's peer.
func (s *session) call(ctx context.Context, op string, in any, fwd *Forwarded, out any) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return Errorf(CodeInvalidInput, "encode input: %v", err)
	}
	p, err := s.start(ctx, op, raw, "", fwd)
	if err != nil {
		return err
	}
	return s.finishCall(ctx, p, out)
}

// finishCall waits for a query's or mutation's answer.
func (s *session) finishCall(ctx context.Context, p *pending, out any) error {
	defer s.end(p)
	output, _, err := s.nextOutput(ctx, p, false)
	if err != nil {
		return err
	}
	if out != nil && !isNull(output) {
		if err := json.Unmarshal(output, out); err != nil {
			return Errorf(CodeInternal, "decode output: %v", err)
		}
	}
	return nil
}

// stream yields a subscription's outputs until it completes, fails or the
// consumer stops.
func (s *session) stream(ctx context.Context, p *pending, yield func(json.RawMessage, error) bool) {
	defer s.end(p)
	for {
		out, more, err := s.nextOutput(ctx, p, true)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			yield(nil, err)
			return
		}
		if !yield(out, nil) || !more {
			return // end aborts it, unless it ended
		}
	}
}

// nextOutput waits for the next answer to a call this side made and
// returns its output, taken from the frame without decoding it, and
// whether more may follow: only a subscription's (stream) output, and
// only when the peer's operation is one (a query or mutation of the
// peer's ends with its answer, even when called as a subscription). A
// subscription that completed returns io.EOF; the peer's call.error
// returns as its *Error; a query or mutation that answers like a
// subscription is an error. The caller's deadline, its cancellation and
// an abort from the peer end the call as in [session.next].
func (s *session) nextOutput(ctx context.Context, p *pending, stream bool) (out json.RawMessage, more bool, err error) {
	env, err := s.next(ctx, p)
	if err != nil {
		return nil, false, err
	}
	switch env.Type {
	case TypeResponded:
		out, err := decodeOutput(env.Payload)
		if err != nil {
			return nil, false, Errorf(CodeInternal, "bad call.responded payload: %s", jsonReason(err))
		}
		return out, stream && !p.once, nil
	case TypeCompleted:
		if stream {
			return nil, false, io.EOF
		}
	case TypeError:
		return nil, false, decodeError(env.Payload)
	}
	return nil, false, Errorf(CodeInvalidOperationType, "%s answered like a subscription", env.Type)
}

// decodeError reads a call.error payload.
func decodeError(payload json.RawMessage) error {
	var e Error
	if err := json.Unmarshal(payload, &e); err != nil || e.Code == "" {
		return Errorf(CodeInternal, "malformed call.error payload")
	}
	return &e
}
