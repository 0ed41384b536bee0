package msg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// AdminScope is what the msg call operations require by default: they
// send as this node and read its messages.
const AdminScope = "admin"

// OpsConfig configures the call operations of RegisterOps.
type OpsConfig struct {
	// Access decides who may use msg/send, msg/inbox, msg/ack and
	// msg/watch; nil requires the admin scope.
	Access *core.AccessControl
	// Dialer connects msg/send to recipients; required for msg/send.
	Dialer *core.Dialer
	// Resolve returns the address ("NODEID@host:port") at which a bare
	// NODEID is reached (the node or its home node); nil accepts only
	// addresses.
	Resolve func(core.NodeID) (string, error)
}

// SendInput is msg/send's input.
type SendInput struct {
	To          string `json:"to" jsonschema:"recipient: NODEID, or NODEID@HOST:PORT to deliver there (the recipient or its home node)"`
	Text        string `json:"text,omitempty" jsonschema:"text body (content type text/plain; charset=utf-8)"`
	Body        []byte `json:"body,omitempty" jsonschema:"binary body (base64), instead of text"`
	ContentType string `json:"contentType,omitempty" jsonschema:"content type of body (default application/octet-stream)"`
}

// SendOutput is msg/send's answer.
type SendOutput struct {
	ID   string    `json:"id"`   // the message id, hex
	Time time.Time `json:"time"` // the time sealed into it
}

// InboxInput is msg/inbox's and msg/watch's input.
type InboxInput struct {
	After uint64 `json:"after,omitempty" jsonschema:"list entries after this id"`
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many (1..64, default 64)"`
}

// InboxMessage is one message of this node's inbox, opened.
type InboxMessage struct {
	Entry       uint64    `json:"entry"`                 // the inbox entry id, for ack
	Received    time.Time `json:"received"`              // when the inbox accepted it
	Kind        string    `json:"kind"`                  // "message" or "reply"
	From        string    `json:"from,omitempty"`        // the sender's NodeID
	Time        time.Time `json:"time,omitzero"`         // when the sender sealed it
	ID          string    `json:"id,omitempty"`          // the message id, hex
	ContentType string    `json:"contentType,omitempty"` // the body's content type
	Text        string    `json:"text,omitempty"`        // the body of a text message
	Body        []byte    `json:"body,omitempty"`        // any other body
	Error       string    `json:"error,omitempty"`       // why the entry does not open
}

// InboxOutput is msg/inbox's answer.
type InboxOutput struct {
	Messages []InboxMessage `json:"messages"` // oldest first
}

// AckInput is msg/ack's input.
type AckInput struct {
	Entries []uint64 `json:"entries" jsonschema:"entry ids to remove"`
}

// AckOutput is msg/ack's answer.
type AckOutput struct {
	Removed int `json:"removed"` // how many entries existed
}

// TextType is the content type of text messages.
const TextType = "text/plain; charset=utf-8"

// RegisterOps adds msg/send, msg/inbox, msg/ack and msg/watch to reg,
// serving this node's own inbox.
func (h *Handler) RegisterOps(reg *call.Registry, cfg OpsConfig) error {
	access := core.AccessControl{AllScopes: []string{AdminScope}}
	if cfg.Access != nil {
		access = *cfg.Access
	}
	errs := []error{
		call.Register(reg, call.Spec{Name: "msg/send", Type: call.Mutation, Access: access,
			Description: "seal a message from this node and deliver it to the recipient or its home node"},
			func(ctx context.Context, _ *call.Request, in SendInput) (SendOutput, error) {
				return h.opSend(ctx, cfg, in)
			}),
		call.Register(reg, call.Spec{Name: "msg/inbox", Access: access,
			Description: "list this node's received messages, opened"},
			func(_ context.Context, _ *call.Request, in InboxInput) (InboxOutput, error) {
				es, err := h.cfg.Inbox.List(h.id, in.After, in.Limit)
				if err != nil {
					return InboxOutput{}, err
				}
				out := InboxOutput{Messages: []InboxMessage{}}
				for _, e := range es {
					out.Messages = append(out.Messages, h.opener.Describe(e))
				}
				return out, nil
			}),
		call.Register(reg, call.Spec{Name: "msg/ack", Type: call.Mutation, Access: access,
			Description: "remove messages from this node's inbox"},
			func(_ context.Context, _ *call.Request, in AckInput) (AckOutput, error) {
				n, err := h.cfg.Inbox.Ack(h.id, in.Entries...)
				return AckOutput{Removed: n}, err
			}),
		call.RegisterStream(reg, call.Spec{Name: "msg/watch", Access: access,
			Description: "send this node's messages after an entry id, then each new one as it arrives"},
			func(ctx context.Context, _ *call.Request, in InboxInput, send func(InboxMessage) error) error {
				return h.cfg.Inbox.Follow(ctx, h.id, in.After, func(e Entry) error { return send(h.opener.Describe(e)) })
			}),
	}
	return errors.Join(errs...)
}

// Describe opens an inbox entry for display, checking the envelope's time
// against when the inbox received it; an entry that does not open carries
// the error.
func (o *Opener) Describe(e Entry) InboxMessage {
	out := InboxMessage{Entry: e.ID, Received: e.Received, Kind: "message"}
	if e.Kind != KindEnvelope {
		out.Kind = "reply"
		out.Error = "a SURB reply: open it with the SURB's keys"
		return out
	}
	m, err := o.Open(e.Data, e.Received)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	out.From, out.Time, out.ID, out.ContentType = m.From.String(), m.Time.UTC(), m.ID.String(), m.ContentType
	if m.ContentType == TextType {
		out.Text = string(m.Body)
	} else {
		out.Body = m.Body
	}
	return out
}

// opSend is msg/send.
func (h *Handler) opSend(ctx context.Context, cfg OpsConfig, in SendInput) (SendOutput, error) {
	if cfg.Dialer == nil {
		return SendOutput{}, call.Errorf(call.CodeUnavailable, "sending is not configured")
	}
	m := Message{ContentType: TextType, Body: []byte(in.Text)}
	if in.Body != nil {
		m.ContentType, m.Body = in.ContentType, in.Body
		if m.ContentType == "" {
			m.ContentType = "application/octet-stream"
		}
	}
	to, addr, err := ResolveRecipient(in.To, cfg.Resolve)
	if err != nil {
		return SendOutput{}, call.Errorf(call.CodeInvalidInput, "%v", err)
	}
	m.To = to
	s, err := Dial(ctx, cfg.Dialer, addr)
	if err != nil {
		return SendOutput{}, call.Errorf(call.CodeUnavailable, "%v", err)
	}
	defer s.Close()
	m, err = s.Send(ctx, h.cfg.NodeKey, m)
	if err != nil {
		return SendOutput{}, call.Errorf(call.CodeUnavailable, "%v", err)
	}
	return SendOutput{ID: m.ID.String(), Time: m.Time}, nil
}

// ResolveRecipient parses "NODEID" or "NODEID@HOST:PORT" and returns the
// recipient and the address to deliver at: the given one, else
// resolve's answer for the recipient.
func ResolveRecipient(s string, resolve func(core.NodeID) (string, error)) (core.NodeID, string, error) {
	if strings.Contains(s, "@") {
		id, _, err := core.ParseAddr(s)
		if err != nil {
			return core.NodeID{}, "", err
		}
		if id.IsZero() {
			return core.NodeID{}, "", fmt.Errorf("%q: the address must start with the recipient's NODEID@", s)
		}
		return id, s, nil
	}
	id, err := core.ParseNodeID(s)
	if err != nil {
		return core.NodeID{}, "", err
	}
	if resolve == nil {
		return core.NodeID{}, "", fmt.Errorf("no address known for %s: give NODEID@HOST:PORT", id.ShortString())
	}
	addr, err := resolve(id)
	if err != nil {
		return core.NodeID{}, "", err
	}
	return id, addr, nil
}
