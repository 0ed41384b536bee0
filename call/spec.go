package call

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/alkdev/alknet/core"
)

// OpType is an operation's shape.
type OpType string

// Operation types.
const (
	// Query reads; it answers with exactly one output.
	Query OpType = "query"
	// Mutation changes something; it answers with exactly one output.
	Mutation OpType = "mutation"
	// Subscription answers with any number of outputs, then completes.
	Subscription OpType = "subscription"
)

// Visibility says who may call an operation.
type Visibility string

// Visibilities.
const (
	// External operations are callable from the wire and listed.
	External Visibility = "external"
	// Internal operations are only composed by other operations; from the
	// wire they are NOT_FOUND, and they are never listed.
	Internal Visibility = "internal"
)

// DefaultTimeout is the deadline of queries and mutations that set none.
const DefaultTimeout = 30 * time.Second

// ErrorDef declares an operation's own error code.
type ErrorDef struct {
	Code        Code   `json:"code"`
	Description string `json:"description,omitempty"`
	// HTTPStatus is the status the HTTP gateway answers the code with,
	// 400..599; zero means 500.
	HTTPStatus int `json:"httpStatus,omitempty"`
}

// PeerOp names an operation on one peer.
type PeerOp struct {
	Peer string `json:"peer"`
	Op   string `json:"op"`
}

// Reach lists the peer operations an operation's handler may call through
// [Request.CallPeer]: Ops by name on any peer (via [Any] or [Specific]),
// Pinned only on that one peer (via [Specific]). The zero value reaches no
// peer.
type Reach struct {
	Ops    []string
	Pinned []PeerOp
}

// allows reports whether the reach admits op on ref.
func (r Reach) allows(ref PeerRef, op string) bool {
	if slices.Contains(r.Ops, op) {
		return true
	}
	return !ref.any && slices.Contains(r.Pinned, PeerOp{Peer: ref.peer, Op: op})
}

// Spec describes an operation.
type Spec struct {
	// Name is "service/op": lowercase segments separated by "/"; required.
	Name string `json:"name"`
	// Type is the operation's shape; required.
	Type OpType `json:"type"`
	// Visibility defaults to External.
	Visibility Visibility `json:"visibility"`
	// Description says what the operation does, for listings.
	Description string `json:"description,omitempty"`
	// Input and Output are JSON Schemas. The typed helpers derive them from
	// the Go types when nil; a nil Input on an untyped registration accepts
	// any input.
	Input  *jsonschema.Schema `json:"inputSchema,omitempty"`
	Output *jsonschema.Schema `json:"outputSchema,omitempty"`
	// Errors declares the operation's own codes; a handler error with any
	// other code becomes INTERNAL.
	Errors []ErrorDef `json:"errors,omitempty"`
	// Access decides who may call; the zero value admits any authenticated
	// caller.
	Access core.AccessControl `json:"-"`
	// Timeout is the deadline of one call. Zero: DefaultTimeout for queries
	// and mutations, none for subscriptions; negative: none.
	Timeout time.Duration `json:"-"`
	// Reach lists the peer operations the handler may call.
	Reach Reach `json:"-"`
	// ReplaySafe marks a query whose call may run twice, or more, for one
	// request without harm: it changes nothing, and what it costs a second
	// time (CPU, a log line, a rate limit's count) is acceptable. Only such
	// queries run on a request that arrived as 0-RTT data, before the
	// connection's handshake completed; an attacker who recorded it can
	// send it again. Every other call of such a connection waits for the
	// handshake, which a replay never completes (docs/protocols/call.md,
	// "Early data"). Only queries may set it. What a replay-safe handler
	// composes ([Request.Call] of an operation that is not replay-safe,
	// [Request.CallPeer], [Request.SubscribePeer]) waits for the handshake;
	// a route ([RegisterRoute]) marked replay-safe says the worker's
	// operation is.
	ReplaySafe bool `json:"replaySafe,omitempty"`
}

// accessJSON is how services/schema shows an operation's access control.
type accessJSON struct {
	Public    bool     `json:"public"`
	AllScopes []string `json:"allScopes,omitempty"`
	AnyScopes []string `json:"anyScopes,omitempty"`
}

// MarshalJSON includes the access control, so clients see what a call needs.
func (s Spec) MarshalJSON() ([]byte, error) {
	type plain Spec
	return json.Marshal(struct {
		plain
		Access accessJSON `json:"access"`
	}{plain(s), accessJSON{s.Access.Public, s.Access.AllScopes, s.Access.AnyScopes}})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Spec) UnmarshalJSON(b []byte) error {
	type plain Spec
	var v struct {
		plain
		Access accessJSON `json:"access"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Spec(v.plain)
	s.Access = core.AccessControl{Public: v.Access.Public, AllScopes: v.Access.AllScopes, AnyScopes: v.Access.AnyScopes}
	return nil
}

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)+$`)

// validate checks the spec and fills defaults into a copy.
func (s Spec) validate() (Spec, error) {
	var errs []error
	if !namePattern.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("name %q: want lowercase \"service/op\"", s.Name))
	}
	switch s.Type {
	case Query, Mutation, Subscription:
	default:
		errs = append(errs, fmt.Errorf("type %q: want query, mutation or subscription", s.Type))
	}
	if s.ReplaySafe && s.Type != Query {
		errs = append(errs, fmt.Errorf("replaySafe: only a query may be, not a %s", s.Type))
	}
	switch s.Visibility {
	case "":
		s.Visibility = External
	case External, Internal:
	default:
		errs = append(errs, fmt.Errorf("visibility %q: want external or internal", s.Visibility))
	}
	for _, e := range s.Errors {
		if slices.Contains(protocolCodes, e.Code) || e.Code == "" {
			errs = append(errs, fmt.Errorf("error code %q: empty or a protocol code", e.Code))
		}
		if e.HTTPStatus != 0 && (e.HTTPStatus < 400 || e.HTTPStatus > 599) {
			errs = append(errs, fmt.Errorf("error code %q: http status %d outside 400..599", e.Code, e.HTTPStatus))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("call: operation %q: %w", s.Name, err)
	}
	return s, nil
}

// deadline returns the call's timeout; zero means none.
func (s Spec) deadline() time.Duration {
	switch {
	case s.Timeout < 0:
		return 0
	case s.Timeout > 0:
		return s.Timeout
	case s.Type == Subscription:
		return 0
	}
	return DefaultTimeout
}

// declares reports whether the spec declares code.
func (s Spec) declares(code Code) bool {
	return slices.ContainsFunc(s.Errors, func(e ErrorDef) bool { return e.Code == code })
}
