package call

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// RegisterRoute adds an operation that a head passes through to op on the
// peer ref selects: the caller's call becomes the same call on the worker.
// The head checks what only it can (the operation's access control against
// the caller, that the worker is attached and has op) and hands the
// caller's input on as it came, without decoding it: spec.Input, if set, is
// checked at the head as for any operation; left nil, the input is checked
// only by the worker, against its own schema. The worker's answers go back
// to the caller as they came, each output taken from its frame and framed
// again under the caller's request id, never decoded into Go values. The
// worker checks access against the head's identity and sees the caller as
// forwarded_for, as with [Request.CallPeer].
//
// spec.Type defaults to Query and must match op's type on the worker: a
// query or mutation answers once, a subscription streams until the worker
// completes it. spec.Reach is extended to reach op on ref. The deadline,
// aborts (either way), error mapping and back-pressure are those of
// [Request.CallPeer] and [Request.SubscribePeer].
func RegisterRoute(reg *Registry, spec Spec, ref PeerRef, op string) error {
	if spec.Type == "" {
		spec.Type = Query
	}
	if op == "" || !ref.any && ref.peer == "" {
		return fmt.Errorf("call: operation %q: a route needs a peer operation and a peer (or Any)", spec.Name)
	}
	if ref.any {
		spec.Reach.Ops = append(spec.Reach.Ops[:len(spec.Reach.Ops):len(spec.Reach.Ops)], op)
	} else {
		spec.Reach.Pinned = append(spec.Reach.Pinned[:len(spec.Reach.Pinned):len(spec.Reach.Pinned)], PeerOp{Peer: ref.peer, Op: op})
	}
	stream := spec.Type == Subscription
	return reg.Register(spec, func(ctx context.Context, req *Request, input json.RawMessage, send func(json.RawMessage) error) error {
		if err := req.reachable(ref, op); err != nil {
			return err
		}
		return req.srv.peers.relay(ctx, ref, op, input, forwarded(req), stream, send)
	})
}

// relay starts op on the peer ref selects with input as it is and hands
// each output the peer answers to send as it came: once for a query or
// mutation, until the peer completes for a subscription (stream). An error
// from send (the caller gone, aborted, or a deadline) aborts the peer's
// call; the peer's call.error is returned as its *Error.
func (ps *Peers) relay(ctx context.Context, ref PeerRef, op string, input json.RawMessage, fwd *Forwarded, stream bool, send func(json.RawMessage) error) error {
	s, p, err := ps.start(ctx, ref, op, input, fwd)
	if err != nil {
		return err
	}
	defer s.end(p)
	for {
		out, more, err := s.nextOutput(ctx, p, stream)
		if stream && errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := send(out); err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}
