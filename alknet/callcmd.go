package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/call"
)

var callCommand = &cli.Command{
	Name:      "call",
	Usage:     "call an operation on a node and print its output as JSON",
	ArgsUsage: "self|[NODEID@]HOST:PORT OP [JSON-INPUT]",
	Description: "Runs OP with the given JSON input (default null) over alknet/call. The address self\n" +
		"(or this node's own NodeID) is the node running on this data dir, reached through its\n" +
		"control socket as its operator, with every scope. A subscription\n" +
		"prints one JSON line per event until it completes; Ctrl-C aborts it. With --peer the\n" +
		"node routes the call, as a head, to that attached worker (needs the call:route scope).",
	Flags: withCommon(
		&cli.StringFlag{Name: "peer", Usage: "route through the node to this worker (its identity ID); \"any\" lets the head choose"},
		&cli.StringFlag{Name: "token", Usage: "API token to authenticate the call (default: the data dir's node key)", EnvVars: []string{"ALKNET_TOKEN"}},
		networkFlag,
	),
	Action: func(c *cli.Context) error {
		if c.NArg() < 2 || c.NArg() > 3 {
			return cli.Exit("alknet call: want ADDR OP [JSON-INPUT]", 2)
		}
		op := strings.TrimPrefix(c.Args().Get(1), "/")
		input := json.RawMessage("null")
		if c.NArg() == 3 {
			input = json.RawMessage(c.Args().Get(2))
			if !json.Valid(input) {
				return cli.Exit("alknet call: the input is not valid JSON", 2)
			}
		}
		ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		interrupted := func(err error) error {
			if ctx.Err() != nil && c.Context.Err() == nil {
				// Ctrl-C (or SIGTERM) ended it, as a shell's interrupted
				// command: exit 130, quietly.
				return cli.Exit("", 130)
			}
			return err
		}
		return interrupted(withCall(ctx, c, func(client *call.Client) error {
			return callOp(ctx, c, client, op, input)
		}))
	},
}

// callOp runs op with input on the node and prints its outputs; with
// --peer, routed to that worker.
func callOp(ctx context.Context, c *cli.Context, client *call.Client, op string, input json.RawMessage) error {
	out := c.App.Writer
	p := c.String("peer")
	if p == "" {
		return callDirect(ctx, out, c.App.ErrWriter, client, op, input)
	}
	typ, err := opType(ctx, client, p, op)
	if err != nil {
		return err
	}
	route := map[string]any{"operationId": op, "input": input}
	if p != "any" {
		route["peer"] = p
	}
	op, input = "peers/call", mustJSON(route)
	if typ == call.Subscription {
		for ev, err := range client.Subscribe(ctx, "peers/subscribe", input) {
			if err != nil {
				return err
			}
			writeJSONLine(out, ev)
		}
		return nil
	}
	var result json.RawMessage
	if err := client.Call(ctx, op, input, &result); err != nil {
		return err
	}
	writeJSONLine(out, result)
	return nil
}

// callDirect runs op on the node and prints its outputs: a query's or
// mutation's one, a subscription's each until it completes. It asks for
// op's shape (services/schema) and starts op beside it without waiting for
// the answer, so both requests leave together, with the handshake when the
// connection resumed (0-RTT): the shape only decides whether more outputs
// follow the first. If the shape cannot be had, the first output is all it
// prints, with a warning on errOut: op has run, and a script must not take
// a mutation that succeeded for one that failed.
func callDirect(ctx context.Context, out, errOut io.Writer, client *call.Client, op string, input json.RawMessage) error {
	type shape struct {
		typ call.OpType
		err error
	}
	shaped := make(chan shape, 1)
	go func() {
		typ, err := opType(ctx, client, "", op)
		shaped <- shape{typ, err}
	}()
	first := true
	for ev, err := range client.Subscribe(ctx, op, input) {
		if err != nil {
			return err
		}
		writeJSONLine(out, ev)
		if first {
			first = false
			s := <-shaped
			if s.err != nil && ctx.Err() != nil {
				return s.err // interrupted before the shape came back
			}
			if s.err != nil {
				fmt.Fprintf(errOut, "alknet call: %s answered, but its shape is unknown (%v): printed its first output only\n", op, s.err)
				return nil
			}
			if s.typ != call.Subscription {
				return nil // its one output: stopping aborts nothing
			}
		}
	}
	return nil
}

// withCall runs fn with a client of the address argument: the node beside
// through its control socket, or one dialled with the data dir's key whose
// first calls leave with the handshake when the node's ticket allows it.
// If that connection was closed because TCP+TLS connected before its
// handshake completed (UDP stopped getting through since the ticket), the
// node ran nothing of fn's but replay-safe queries and nothing came back
// for fn to print: fn runs again over that TCP+TLS connection, which the
// dialer keeps for its next dial.
func withCall(ctx context.Context, c *cli.Context, fn func(*call.Client) error) error {
	addr := c.Args().First()
	noteAddr(addr)
	opts := call.Options{AuthToken: c.String("token")}
	client, ok, err := besideCall(ctx, c, addr, opts)
	if err != nil {
		return err
	}
	if ok {
		defer client.Close()
		return fn(client)
	}
	if opts.Dialer, err = dialer(c); err != nil {
		return err
	}
	dial := func(early bool) (*call.Client, error) {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		// The node runs only replay-safe queries before the handshake
		// completes.
		opts.EarlyData = early
		return call.Dial(dctx, addr, opts)
	}
	if client, err = dial(true); err != nil {
		return err
	}
	err = fn(client)
	client.Close()
	if err == nil || ctx.Err() != nil || !client.FellBackToTCP() {
		return err
	}
	if client, err = dial(false); err != nil {
		return err
	}
	defer client.Close()
	return fn(client)
}

// opType asks the node (or, with a peer, the head's list of its peers) what
// shape op has. An operation the node does not describe is called as a
// query, so its own error comes back.
func opType(ctx context.Context, client *call.Client, peer, op string) (call.OpType, error) {
	if peer == "" {
		var spec call.Spec
		if err := client.Call(ctx, "services/schema", map[string]string{"name": op}, &spec); err != nil {
			if call.IsCode(err, call.CodeNotFound) {
				return call.Query, nil
			}
			return "", err
		}
		return spec.Type, nil
	}
	var peers []call.PeerOps
	if err := client.Call(ctx, "services/list-peers", nil, &peers); err != nil {
		return "", err
	}
	var names []string
	found := peer == "any"
	for _, p := range peers[1:] {
		names = append(names, p.Peer)
		if p.Peer != peer && peer != "any" {
			continue
		}
		found = true
		for _, o := range p.Ops {
			if o.Name == op {
				return o.Type, nil
			}
		}
	}
	if !found {
		attached := "none is attached"
		if len(names) > 0 {
			attached = "attached: " + strings.Join(names, ", ")
		}
		return "", fmt.Errorf("no worker named %q is attached to this node (%s)", peer, attached)
	}
	return call.Query, nil
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and raw JSON always encode
	}
	return b
}

// writeJSONLine prints raw JSON compacted on one line.
func writeJSONLine(w io.Writer, raw json.RawMessage) {
	var b bytes.Buffer
	if len(raw) == 0 || json.Compact(&b, raw) != nil {
		b.Reset()
		b.WriteString("null")
	}
	b.WriteByte('\n')
	_, _ = w.Write(b.Bytes())
}

var opsCommand = &cli.Command{
	Name:      "ops",
	Usage:     "list the operations a node lets you call, or show one's input schema and an example",
	ArgsUsage: "self|[NODEID@]HOST:PORT [OP]",
	Flags: withCommon(
		&cli.BoolFlag{Name: "peers", Usage: "also list the operations of every worker attached to the node (needs call:route)"},
		&cli.StringFlag{Name: "token", Usage: "API token to authenticate with", EnvVars: []string{"ALKNET_TOKEN"}},
		networkFlag,
		&cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table: the operations, or with --peers one {peer, ops} per group"},
	),
	Action: func(c *cli.Context) error {
		if c.NArg() < 1 || c.NArg() > 2 {
			return cli.Exit("alknet ops: want an address and, optionally, an operation", 2)
		}
		return withCall(c.Context, c, func(client *call.Client) error { return listOps(c, client) })
	},
}

// listOps prints the operations client's node lets the caller call, or
// with a second argument that one's input schema and an example.
func listOps(c *cli.Context, client *call.Client) error {
	if c.NArg() == 2 {
		return showOp(c, client, strings.TrimPrefix(c.Args().Get(1), "/"))
	}
	groups := []call.PeerOps{{Peer: "local"}}
	if c.Bool("peers") {
		if err := client.Call(c.Context, "services/list-peers", nil, &groups); err != nil {
			return err
		}
	} else if err := client.Call(c.Context, "services/list", nil, &groups[0].Ops); err != nil {
		return err
	}
	if c.Bool("json") {
		for i := range groups {
			groups[i].Ops = orEmpty(groups[i].Ops)
		}
		if c.Bool("peers") {
			return printJSON(c, groups)
		}
		return printJSON(c, groups[0].Ops)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for _, g := range groups {
		if c.Bool("peers") {
			fmt.Fprintf(tw, "[%s]\n", g.Peer)
		}
		for _, o := range g.Ops {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Name, o.Type, o.Description)
		}
	}
	return tw.Flush()
}

// showOp prints one operation's spec: what it is, who may call it, its
// input schema and an example call; with --json the spec as the node
// gives it.
func showOp(c *cli.Context, client *call.Client, op string) error {
	var raw json.RawMessage
	if err := client.Call(c.Context, "services/schema", map[string]string{"name": op}, &raw); err != nil {
		return err
	}
	if c.Bool("json") {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return printJSON(c, v)
	}
	var spec struct {
		Name        string         `json:"name"`
		Type        string         `json:"type"`
		Description string         `json:"description"`
		Input       map[string]any `json:"inputSchema"`
		Access      struct {
			Public    bool     `json:"public"`
			AllScopes []string `json:"allScopes"`
			AnyScopes []string `json:"anyScopes"`
		} `json:"access"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		return fmt.Errorf("services/schema %s: %w", op, err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s (%s): %s\n", spec.Name, spec.Type, spec.Description)
	a := spec.Access
	switch {
	case a.Public:
		fmt.Fprintln(w, "access: anyone")
	case len(a.AllScopes) == 0 && len(a.AnyScopes) == 0:
		fmt.Fprintln(w, "access: any known key or token")
	default:
		var need []string
		if len(a.AllScopes) > 0 {
			need = append(need, "scopes "+strings.Join(a.AllScopes, " and "))
		}
		if len(a.AnyScopes) > 0 {
			need = append(need, "one of "+strings.Join(a.AnyScopes, ", "))
		}
		fmt.Fprintf(w, "access: %s\n", strings.Join(need, "; "))
	}
	if spec.Input == nil {
		fmt.Fprintln(w, "input: any JSON")
	} else {
		schema, _ := json.MarshalIndent(spec.Input, "", "  ")
		fmt.Fprintf(w, "input schema:\n%s\n", schema)
	}
	example, _ := json.Marshal(exampleOf(spec.Input, 0))
	fmt.Fprintf(w, "example:\n  alknet call %s %s '%s'\n", c.Args().First(), spec.Name, example)
	return nil
}

// exampleOf makes a value of a JSON Schema (as decoded JSON): its default
// or first example if it has one, else a placeholder of its type with the
// required properties of an object filled in.
func exampleOf(schema map[string]any, depth int) any {
	if schema == nil || depth > 8 {
		return nil
	}
	if v, ok := schema["default"]; ok {
		return v
	}
	if ex, ok := schema["examples"].([]any); ok && len(ex) > 0 {
		return ex[0]
	}
	if enum, ok := schema["enum"].([]any); ok && len(enum) > 0 {
		return enum[0]
	}
	typ, _ := schema["type"].(string)
	if types, ok := schema["type"].([]any); ok {
		for _, t := range types {
			if s, _ := t.(string); s != "null" {
				typ = s
				break
			}
		}
	}
	switch typ {
	case "object":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		req, _ := schema["required"].([]any)
		for _, r := range req {
			name, _ := r.(string)
			p, _ := props[name].(map[string]any)
			out[name] = exampleOf(p, depth+1)
		}
		return out
	case "array":
		return []any{}
	case "string":
		return ""
	case "integer", "number":
		return 0
	case "boolean":
		return false
	}
	return nil
}
