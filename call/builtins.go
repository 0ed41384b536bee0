package call

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/alkdev/alknet/core"
)

// RouteScope lets a caller use the head's routing operations
// (services/list-peers, peers/call, peers/subscribe).
const RouteScope = "call:route"

// Info describes the node for services/info.
type Info struct {
	NodeID  string   `json:"nodeId"`
	Version string   `json:"version"`
	ALPNs   []string `json:"alpns"`
	// Keys are public keys the node advertises besides its node key, by
	// purpose, in their own text form (e.g. "msg": the messaging key record).
	Keys map[string]string `json:"keys,omitempty"`
	// Ops is filled in by services/info.
	Ops int `json:"ops"`
}

// RegisterBuiltins adds the services/* operations every node serves. With
// peers (a head) it also adds services/list-peers, peers/call and
// peers/subscribe, which need [RouteScope].
func RegisterBuiltins(reg *Registry, info Info, peers *Peers) error {
	public := core.AccessControl{Public: true}
	type nameIn struct {
		Name string `json:"name" jsonschema:"operation name, e.g. fs/stat"`
	}
	type empty struct{}
	steps := []func() error{
		func() error {
			return Register(reg, Spec{Name: "services/list", ReplaySafe: true, Description: "operations the caller may call, with type and description", Access: public},
				func(_ context.Context, req *Request, _ empty) ([]ListedOp, error) {
					out := []ListedOp{}
					for _, s := range reg.Specs() {
						if s.Visibility == External && s.Access.Check(req.Caller) == nil {
							out = append(out, ListedOp{Name: s.Name, Type: s.Type, Description: s.Description})
						}
					}
					return out, nil
				})
		},
		func() error {
			return Register(reg, Spec{Name: "services/schema", ReplaySafe: true, Description: "one operation's full spec: schemas, errors, access", Access: public,
				Output: &jsonschema.Schema{Type: "object"}},
				func(_ context.Context, req *Request, in nameIn) (Spec, error) {
					op, ok := reg.lookup(strings.TrimPrefix(in.Name, "/"))
					if !ok || op.spec.Visibility != External || op.spec.Access.Check(req.Caller) != nil {
						return Spec{}, Errorf(CodeNotFound, "operation not found: %s", core.Clip(in.Name))
					}
					return op.spec, nil
				})
		},
		func() error {
			return Register(reg, Spec{Name: "services/ping", ReplaySafe: true, Description: "answers at once, with the node's time", Access: public},
				func(context.Context, *Request, empty) (map[string]any, error) {
					return map[string]any{"pong": true, "time": time.Now().UTC().Format(time.RFC3339Nano)}, nil
				})
		},
		func() error {
			return Register(reg, Spec{Name: "services/info", ReplaySafe: true, Description: "NodeID, version, ALPNs served and operation count", Access: public},
				func(context.Context, *Request, empty) (Info, error) {
					i := info
					i.Ops = reg.Len()
					return i, nil
				})
		},
		func() error {
			return Register(reg, Spec{Name: "services/stats", Description: "per-operation request and error counts and latency percentiles"},
				func(context.Context, *Request, empty) ([]OpStats, error) {
					specs := reg.Specs()
					out := make([]OpStats, 0, len(specs))
					for _, s := range specs {
						if op, ok := reg.lookup(s.Name); ok {
							out = append(out, op.stats.snapshot(s.Name))
						}
					}
					return out, nil
				})
		},
	}
	if peers != nil {
		route := core.AccessControl{AllScopes: []string{RouteScope}}
		// The input is passed on as it came; its schema is the peer's
		// operation's, checked there.
		routeSchema, err := jsonschema.For[routeIn](nil)
		if err != nil {
			return err
		}
		routeSchema.Properties["input"] = &jsonschema.Schema{Description: "the operation's input, passed to the peer as it is"}
		// The output is the peer's, passed back as it came.
		anySchema, err := jsonschema.For[any](nil)
		if err != nil {
			return err
		}
		ref := func(in routeIn) PeerRef {
			if in.Peer == "" {
				return Any()
			}
			return Specific(in.Peer)
		}
		steps = append(steps,
			func() error {
				return Register(reg, Spec{Name: "services/list-peers", Description: "the operations of this node and of every attached peer", Access: route},
					func(_ context.Context, req *Request, _ empty) ([]PeerOps, error) {
						local := PeerOps{Peer: "local", Ops: []ListedOp{}}
						for _, s := range reg.Specs() {
							if s.Visibility == External && s.Access.Check(req.Caller) == nil {
								local.Ops = append(local.Ops, ListedOp{Name: s.Name, Type: s.Type, Description: s.Description})
							}
						}
						return append([]PeerOps{local}, peers.List()...), nil
					})
			},
			func() error {
				return reg.Register(Spec{Name: "peers/call", Type: Mutation, Description: "run a query or mutation on an attached peer (a specific one, or any)", Access: route, Input: routeSchema, Output: anySchema},
					func(ctx context.Context, req *Request, raw json.RawMessage, send func(json.RawMessage) error) error {
						in, err := decodeRouteIn(raw)
						if err != nil {
							return err
						}
						return peers.relay(ctx, ref(in), strings.TrimPrefix(in.OperationID, "/"), routedInput(in.Input), forwarded(req), false, send)
					})
			},
			func() error {
				return reg.Register(Spec{Name: "peers/subscribe", Type: Subscription, Description: "run a subscription on an attached peer, streamed through this head", Access: route, Input: routeSchema, Output: anySchema},
					func(ctx context.Context, req *Request, raw json.RawMessage, send func(json.RawMessage) error) error {
						in, err := decodeRouteIn(raw)
						if err != nil {
							return err
						}
						return peers.relay(ctx, ref(in), strings.TrimPrefix(in.OperationID, "/"), routedInput(in.Input), forwarded(req), true, send)
					})
			})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// routeIn is the input of peers/call and peers/subscribe.
type routeIn struct {
	Peer        string          `json:"peer,omitempty" jsonschema:"peer ID; empty routes to any peer"`
	OperationID string          `json:"operationId"`
	Input       json.RawMessage `json:"input,omitempty"`
}

// decodeRouteIn reads a route's input, already checked against its schema.
func decodeRouteIn(raw json.RawMessage) (routeIn, error) {
	var in routeIn
	if err := json.Unmarshal(raw, &in); err != nil {
		return in, Errorf(CodeInvalidInput, "input: %s", jsonReason(err))
	}
	return in, nil
}

// routedInput is the input a route passes on: an absent one is null, as
// encoding an absent input was before.
func routedInput(in json.RawMessage) json.RawMessage {
	if len(in) == 0 {
		return json.RawMessage("null")
	}
	return in
}
