package call

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/google/jsonschema-go/jsonschema"
)

// HandlerFunc is the untyped form of an operation. It receives the raw
// input (already validated against the input schema) and sends each output
// with send. A query or mutation sends exactly one output; a subscription
// sends any number and returns nil to complete. A returned error ends the
// call with call.error: an *Error with a declared code is passed on, any
// other error becomes INTERNAL.
//
// ctx ends when the caller aborts, the deadline passes or the connection
// closes. send fails once the call is detached from the wire; a handler
// that ignores ctx is detached at once all the same.
type HandlerFunc func(ctx context.Context, req *Request, input json.RawMessage, send func(json.RawMessage) error) error

// operation is a registered operation.
type operation struct {
	spec    Spec
	handler HandlerFunc
	input   *jsonschema.Resolved // nil: any input
	fast    *vnode               // input compiled, when it can be ([compileSchema])
	object  bool                 // input schema wants an object: null reads as {}
	stats   *opStats
}

// Registry holds the operations a node serves. Register everything before
// serving; a Registry is safe for concurrent use.
type Registry struct {
	mu       sync.RWMutex
	ops      map[string]*operation
	observer atomic.Pointer[Observer]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{ops: make(map[string]*operation)} }

// Register adds an operation. It fails on an invalid spec, a schema that
// does not resolve, or a name already registered.
func (r *Registry) Register(spec Spec, h HandlerFunc) error {
	spec, err := spec.validate()
	if err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("call: operation %q: nil handler", spec.Name)
	}
	op := &operation{spec: spec, handler: h, stats: newOpStats()}
	if spec.Input != nil {
		if op.input, err = spec.Input.Resolve(nil); err != nil {
			return fmt.Errorf("call: operation %q: input schema: %w", spec.Name, err)
		}
		op.object = spec.Input.Type == "object"
		if raw, err := json.Marshal(spec.Input); err == nil {
			op.fast = compileSchema(raw)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.ops[spec.Name]; dup {
		return fmt.Errorf("call: operation %q registered twice", spec.Name)
	}
	r.ops[spec.Name] = op
	return nil
}

// lookup returns the operation called name.
func (r *Registry) lookup(name string) (*operation, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	op, ok := r.ops[name]
	return op, ok
}

// Specs returns every operation's spec, sorted by name.
func (r *Registry) Specs() []Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	specs := make([]Spec, 0, len(r.ops))
	for _, op := range r.ops {
		specs = append(specs, op.spec)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].Name < specs[j].Name })
	return specs
}

// Len returns the number of registered operations.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ops)
}

// checkInput validates raw input against the operation's schema and
// returns the input to hand the handler.
func (op *operation) checkInput(raw json.RawMessage) (json.RawMessage, *Error) {
	if isNull(raw) {
		raw = json.RawMessage("null")
		if op.object {
			raw = json.RawMessage("{}")
		}
	}
	if op.input == nil || op.fast != nil && op.fast.validInput(raw) {
		return raw, nil
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, Errorf(CodeInvalidInput, "input is not JSON: %s", jsonReason(err))
	}
	if err := op.input.Validate(jsonNumbers(v)); err != nil {
		return nil, Errorf(CodeInvalidInput, "input does not match the schema").withDetails(map[string]string{"error": err.Error()})
	}
	return raw, nil
}

// jsonNumbers turns json.Number values into float64 or int64 so the schema
// validator sees JSON numbers as it expects.
func jsonNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = jsonNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = jsonNumbers(e)
		}
	}
	return v
}

// Register adds a query or mutation whose handler takes and returns Go
// values; spec.Type defaults to Query. The input and output schemas are
// derived from In and Out unless the spec sets them.
func Register[In, Out any](r *Registry, spec Spec, fn func(ctx context.Context, req *Request, in In) (Out, error)) error {
	if spec.Type == "" {
		spec.Type = Query
	}
	if spec.Type == Subscription {
		return fmt.Errorf("call: operation %q: a subscription registers with RegisterStream", spec.Name)
	}
	if err := deriveSchemas[In, Out](&spec); err != nil {
		return err
	}
	return r.Register(spec, typed(func(ctx context.Context, req *Request, in In, send func(Out) error) error {
		out, err := fn(ctx, req, in)
		if err != nil {
			return err
		}
		return send(out)
	}))
}

// RegisterStream adds a subscription whose handler sends Go values. It
// returns nil to complete the subscription.
func RegisterStream[In, Out any](r *Registry, spec Spec, fn func(ctx context.Context, req *Request, in In, send func(Out) error) error) error {
	if spec.Type == "" {
		spec.Type = Subscription
	}
	if spec.Type != Subscription {
		return fmt.Errorf("call: operation %q: RegisterStream is for subscriptions", spec.Name)
	}
	if err := deriveSchemas[In, Out](&spec); err != nil {
		return err
	}
	return r.Register(spec, typed(fn))
}

// typed adapts a handler of Go values to a HandlerFunc: it decodes the
// input into In and encodes each Out it sends.
func typed[In, Out any](fn func(ctx context.Context, req *Request, in In, send func(Out) error) error) HandlerFunc {
	return func(ctx context.Context, req *Request, raw json.RawMessage, send func(json.RawMessage) error) error {
		var in In
		if err := json.Unmarshal(raw, &in); err != nil {
			return Errorf(CodeInvalidInput, "input: %s", jsonReason(err))
		}
		return fn(ctx, req, in, func(out Out) error {
			b, err := json.Marshal(out)
			if err != nil {
				return fmt.Errorf("encode output: %w", err)
			}
			return send(b)
		})
	}
}

func deriveSchemas[In, Out any](spec *Spec) error {
	var err error
	if spec.Input == nil {
		if spec.Input, err = jsonschema.For[In](nil); err != nil {
			return fmt.Errorf("call: operation %q: input schema of %T: %w", spec.Name, *new(In), err)
		}
	}
	if spec.Output == nil {
		if spec.Output, err = jsonschema.For[Out](nil); err != nil {
			return fmt.Errorf("call: operation %q: output schema: %w", spec.Name, err)
		}
	}
	return nil
}

// handlerError turns what a handler returned into the call.error to send:
// declared codes and protocol codes pass, other codes become INTERNAL with
// the original in details, and plain errors become a bare INTERNAL (their
// text may hold internals; the caller of handlerError logs it).
func handlerError(spec Spec, err error) *Error {
	var ce *Error
	if errors.As(err, &ce) {
		if spec.declares(ce.Code) || slices.Contains(protocolCodes, ce.Code) {
			return ce
		}
		return Errorf(CodeInternal, "%s", ce.Message).withDetails(map[string]any{"code": ce.Code, "details": ce.Details})
	}
	return Errorf(CodeInternal, "internal error")
}
