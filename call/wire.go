package call

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/alkdev/alknet/core"
)

// ALPN is the protocol name the call protocol is served on.
const ALPN = "alknet/call"

// Frame size limits.
const (
	// DefaultMaxFrameBytes is the largest frame accepted by default.
	DefaultMaxFrameBytes = 16 << 20
	// HardMaxFrameBytes is the largest frame any configuration may accept.
	HardMaxFrameBytes = 64 << 20
	// DefaultMaxAnonFrameBytes is the largest frame a handler accepts by
	// default from a peer that is not known yet.
	DefaultMaxAnonFrameBytes = 64 << 10
)

// The envelope types: five for every call, and call.credit, the flow
// control of a single-stream transport.
const (
	TypeRequested = "call.requested"
	TypeResponded = "call.responded"
	TypeCompleted = "call.completed"
	TypeAborted   = "call.aborted"
	TypeError     = "call.error"
	// TypeCredit grants a callee more bytes of call.responded frames for
	// one call (see [CreditPayload]). Its envelope id is empty, so that a
	// peer that predates it drops it without an answer.
	TypeCredit = "call.credit"
	// TypeShared, the first frame of a QUIC stream, asks the peer to read
	// the stream as shared: the opener's calls share it, multiplexed by
	// request id and under call.credit, as on a single-stream connection.
	// The peer answers with the same envelope; one that predates it
	// answers call.error. A head shares one stream with each worker.
	TypeShared = "call.shared"
)

// Flow control of calls on a single-stream transport (TCP+TLS, an SSH
// channel, WebSocket), where one stream carries every call and a slow
// consumer must not stall the others: the caller offers a receive window
// in call.requested and grants more with call.credit as its consumer takes
// events; the callee sends a call.responded only while the call has
// credit left. QUIC calls have a stream each, and QUIC's flow control.
const (
	// CallWindow is the receive window a caller offers for each call on a
	// single-stream connection: the bytes of call.responded frames (length
	// prefix included) the callee may send before the caller grants more.
	// A subscription then runs at up to CallWindow per round trip (256 KiB
	// is 6.5 MB/s over a 40 ms path; loopback is CPU-bound long before).
	CallWindow = 256 << 10
	// MaxCallWindow caps a window or a credit: larger values count as
	// this, and a callee's credit stops growing here, so no count can
	// overflow.
	MaxCallWindow = 1 << 50
)

// Envelope is one frame's content.
type Envelope struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Payload json.RawMessage `json:"payload"`
}

// RequestPayload is the payload of call.requested.
type RequestPayload struct {
	// OperationID names the operation; one leading "/" is accepted.
	OperationID string `json:"operationId"`
	// Input is the operation's input; absent means null.
	Input json.RawMessage `json:"input,omitempty"`
	// AuthToken, if present, authenticates this request instead of the
	// connection's TLS identity.
	AuthToken string `json:"auth_token,omitempty"`
	// ForwardedFor names the end user a head forwards for. It is metadata
	// for logs and handlers, never used for authorization.
	ForwardedFor *Forwarded `json:"forwarded_for,omitempty"`
	// Window, on a single-stream transport, is the caller's receive window
	// for this call in bytes ([CallWindow]): the callee sends call.responded
	// frames only within it and the credits granted since. Zero (absent)
	// means none, as from a peer that predates flow control. A callee on
	// QUIC ignores it.
	Window uint64 `json:"window,omitempty"`
}

// CreditPayload is the payload of call.credit: Bytes more bytes of
// call.responded frames for the call ID.
type CreditPayload struct {
	ID    string `json:"id"`
	Bytes uint64 `json:"bytes"`
}

// Forwarded is the identity a head claims to act for.
type Forwarded struct {
	ID     string   `json:"id"`
	Scopes []string `json:"scopes,omitempty"`
}

// RespondedPayload is the payload of call.responded.
type RespondedPayload struct {
	Output json.RawMessage `json:"output"`
}

// emptyPayload is the payload of call.completed and call.aborted.
var emptyPayload = json.RawMessage(`{}`)

// Frame errors. A frame error leaves the stream unusable: the reader cannot
// find the next frame boundary. They are core's frame errors: call frames
// its streams with core's codec ([core.FrameLimits.ReadFrame]).
var (
	ErrEmptyFrame     = core.ErrEmptyFrame
	ErrFrameTooLarge  = core.ErrFrameTooLarge
	ErrFrameTruncated = core.ErrFrameTruncated
)

// ReadFrame reads one frame of at most max bytes. An oversized length is
// refused before anything is allocated, and the body's buffer grows as its
// bytes arrive, never by the declared length alone. io.EOF means the stream
// ended cleanly between frames.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	return ReadFrameWithin(r, max, core.FrameLimits{})
}

// ReadFrameWithin is ReadFrame under a connection's limits
// ([core.FrameLimitsOf]): the body is charged to its in-flight budget while
// it arrives ([core.ErrOverBudget]) and must arrive at the minimum rate
// ([core.ErrFrameTooSlow]). No deadline applies between frames.
func ReadFrameWithin(r io.Reader, max int, lim core.FrameLimits) ([]byte, error) {
	return lim.ReadFrame(r, max)
}

// AppendFrame appends the frame of body (length prefix and body) to dst.
func AppendFrame(dst, body []byte) []byte {
	return core.AppendFrame(dst, body)
}

// EnvelopeError is a well-framed envelope that is not valid. ID is the
// envelope's id when it could be read, so the receiver can answer it.
type EnvelopeError struct {
	ID     string
	Reason string
}

func (e *EnvelopeError) Error() string { return "call: bad envelope: " + e.Reason }

// DecodeEnvelope decodes a frame body into an envelope: valid UTF-8 JSON, an
// object with string "type" and "id" and a "payload"; unknown keys are
// ignored. The id is not empty, except in call.credit, which names its call
// in the payload. A type outside the seven is an error too.
func DecodeEnvelope(body []byte) (Envelope, error) {
	var raw struct {
		Type    *string         `json:"type"`
		ID      *string         `json:"id"`
		Payload json.RawMessage `json:"payload"`
	}
	if !utf8.Valid(body) {
		return Envelope{}, &EnvelopeError{Reason: "not UTF-8"}
	}
	if env, ok := fastEnvelope(body); ok {
		raw.Type, raw.ID, raw.Payload = &env.Type, &env.ID, env.Payload
	} else if err := json.Unmarshal(body, &raw); err != nil {
		return Envelope{}, &EnvelopeError{Reason: "not a JSON object: " + jsonReason(err)}
	}
	id := ""
	if raw.ID != nil {
		id = *raw.ID
	}
	switch {
	case raw.ID == nil:
		return Envelope{}, &EnvelopeError{Reason: `missing "id"`}
	case raw.Type == nil:
		return Envelope{}, &EnvelopeError{ID: id, Reason: `missing "type"`}
	case raw.Payload == nil:
		return Envelope{}, &EnvelopeError{ID: id, Reason: `missing "payload"`}
	case id == "" && *raw.Type != TypeCredit:
		return Envelope{}, &EnvelopeError{Reason: `empty "id"`}
	}
	switch *raw.Type {
	case TypeRequested, TypeResponded, TypeCompleted, TypeAborted, TypeError, TypeCredit, TypeShared:
	default:
		return Envelope{}, &EnvelopeError{ID: id, Reason: fmt.Sprintf("unknown type %q", core.Clip(*raw.Type))}
	}
	return Envelope{Type: *raw.Type, ID: id, Payload: raw.Payload}, nil
}

// DecodeCredit decodes the payload of a call.credit: a non-empty "id" and
// "bytes", an integer from 1 to 2^64-1 (what exceeds [MaxCallWindow] counts
// as MaxCallWindow).
func DecodeCredit(payload json.RawMessage) (CreditPayload, error) {
	var raw struct {
		ID    *string `json:"id"`
		Bytes *uint64 `json:"bytes"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return CreditPayload{}, fmt.Errorf("call.credit payload: %s", jsonReason(err))
	}
	switch {
	case raw.ID == nil || *raw.ID == "":
		return CreditPayload{}, errors.New(`call.credit payload: missing "id"`)
	case raw.Bytes == nil || *raw.Bytes == 0:
		return CreditPayload{}, errors.New(`call.credit payload: "bytes" must be a positive integer`)
	}
	return CreditPayload{ID: *raw.ID, Bytes: min(*raw.Bytes, MaxCallWindow)}, nil
}

// EncodeEnvelope returns the frame (length prefix and JSON) of an envelope.
func EncodeEnvelope(typ, id string, payload any) ([]byte, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("call: encode %s payload: %w", typ, err)
	}
	return encodeFrame(typ, id, "", p, "")
}

// encodeFrame returns the frame of an envelope whose payload is pre, raw
// and post, with raw compact JSON as json.Marshal writes it (pre and post
// wrap it: `{"output":` and `}`). The envelope is written directly, the
// bytes json.Marshal would write for it, without scanning the payload
// again.
func encodeFrame(typ, id, pre string, raw json.RawMessage, post string) ([]byte, error) {
	n := core.FrameHeaderBytes + len(`{"type":,"id":,"payload":}`) + len(pre) + len(raw) + len(post) + 2*2 + len(typ) + len(id)
	if n-core.FrameHeaderBytes > HardMaxFrameBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n-core.FrameHeaderBytes)
	}
	b := make([]byte, core.FrameHeaderBytes, n)
	b = append(b, `{"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"payload":`...)
	b = append(b, pre...)
	b = append(b, raw...)
	b = append(b, post...)
	b = append(b, '}')
	body := len(b) - core.FrameHeaderBytes
	if body > HardMaxFrameBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, body)
	}
	binary.BigEndian.PutUint32(b, uint32(body))
	return b, nil
}

// appendString appends s as a JSON string, as json.Marshal writes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // cannot fail for a string
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// isNull reports whether a raw JSON value is absent or null.
func isNull(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) == 0 || bytes.Equal(v, []byte("null"))
}

// jsonReason shortens a JSON error for a message sent to a peer.
func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: want %s", te.Field, te.Type)
	}
	return "invalid JSON"
}

// decodeRequest decodes a call.requested payload.
func decodeRequest(payload json.RawMessage) (RequestPayload, error) {
	if p, ok := fastRequest(payload); ok {
		return p, nil
	}
	var p RequestPayload
	err := json.Unmarshal(payload, &p)
	return p, err
}

// decodeOutput returns the output of a call.responded payload.
func decodeOutput(payload json.RawMessage) (json.RawMessage, error) {
	if out, ok := fastOutput(payload); ok {
		return out, nil
	}
	var r RespondedPayload
	err := json.Unmarshal(payload, &r)
	return r.Output, err
}
