package msg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/alkdev/alknet/core"
)

// ALPN is the protocol of message delivery, inboxes and mix relaying.
const ALPN = "alknet/msg"

// op is a request type on the wire.
type op byte

// Request types (see docs/protocols/msg.md).
const (
	opDeliver   op = 0x01 // envelope → stored for its recipient
	opFetch     op = 0x02 // after u64, limit u32 → entries of the peer's inbox
	opAck       op = 0x03 // ids u64… → count u32
	opWatch     op = 0x04 // after u64 → stream of entry frames
	opKey       op = 0x05 // node id → key record
	opRelay     op = 0x06 // Sphinx packet → accepted by a mix
	opExit      op = 0x07 // recipient, SURB id, payload → from an exit mix
	opMixKey    op = 0x08 // epoch u64 → the mix's signed key record of that epoch
	opDirectory op = 0x09 // empty → the signed mix directory this node publishes
)

// Response types.
const (
	respOK    op = 0x80
	respError op = 0x81
	respEntry op = 0x82 // one entry pushed on a watch stream
)

// Status is the code of a refused request, as the peer sees it.
type Status byte

// Status codes (see docs/protocols/msg.md §3).
const (
	StatusMalformed    Status = 1  // the request does not parse
	StatusForbidden    Status = 2  // the peer lacks the scope
	StatusNotHosted    Status = 3  // no inbox here for that recipient or peer
	StatusQuota        Status = 4  // the inbox is full, or the mix is busy
	StatusDuplicate    Status = 5  // a replayed envelope, message id or packet
	StatusTooLarge     Status = 6  // above the body limit
	StatusRejected     Status = 7  // the envelope or packet failed its checks
	StatusUnsupported  Status = 8  // unknown request, or not a mix
	StatusInternal     Status = 9  // a local failure
	StatusNotAvailable Status = 10 // no key record for that node
)

var statusNames = map[Status]string{
	StatusMalformed: "malformed", StatusForbidden: "forbidden", StatusNotHosted: "not hosted",
	StatusQuota: "quota exceeded", StatusDuplicate: "duplicate", StatusTooLarge: "too large",
	StatusRejected: "rejected", StatusUnsupported: "unsupported", StatusInternal: "internal error",
	StatusNotAvailable: "not available",
}

// String names the status.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status %d", byte(s))
}

// RemoteError is a request the peer refused.
type RemoteError struct {
	// Status is the peer's code.
	Status Status
	// Reason is the peer's short explanation.
	Reason string
}

// Error returns "msg: peer refused: <status>: <reason>".
func (e *RemoteError) Error() string {
	if e.Reason == "" {
		return "msg: peer refused: " + e.Status.String()
	}
	return "msg: peer refused: " + e.Status.String() + ": " + e.Reason
}

// Is matches ErrQuota, ErrDuplicate and ErrTooLarge by status.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case ErrQuota:
		return e.Status == StatusQuota
	case ErrDuplicate:
		return e.Status == StatusDuplicate
	case ErrTooLarge:
		return e.Status == StatusTooLarge
	}
	return false
}

// writeFrame writes length, type and body: a core frame whose body is the
// type byte then the request or response body.
func writeFrame(w io.Writer, t op, body []byte) error {
	b := core.AppendFrameHeader(make([]byte, 0, core.FrameHeaderBytes+1+len(body)), 1+len(body))
	b = append(b, byte(t))
	_, err := w.Write(append(b, body...))
	return err
}

// readFrame reads one frame of at most max bytes (type included) under a
// connection's limits with core's codec ([core.FrameLimits.ReadFrame]): its
// buffer grows as bytes arrive, charged to the in-flight budget. io.EOF
// means the stream ended cleanly between frames.
func readFrame(r io.Reader, max int, lim core.FrameLimits) (op, []byte, error) {
	b, err := lim.ReadFrame(r, max)
	switch {
	case errors.Is(err, io.EOF):
		return 0, nil, err
	case err != nil:
		return 0, nil, fmt.Errorf("msg: read frame: %w", err)
	}
	return op(b[0]), b[1:], nil
}

// errorBody encodes a refusal.
func errorBody(s Status, reason string) []byte {
	if len(reason) > 200 {
		reason = reason[:200]
	}
	return append([]byte{byte(s)}, reason...)
}

// decodeError decodes a refusal.
func decodeError(b []byte) error {
	if len(b) == 0 {
		return &RemoteError{Status: StatusInternal}
	}
	return &RemoteError{Status: Status(b[0]), Reason: string(b[1:])}
}

// appendEntry encodes an entry: id, received ms, kind, length, data.
func appendEntry(b []byte, e Entry) []byte {
	b = binary.BigEndian.AppendUint64(b, e.ID)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Received.UnixMilli()))
	b = append(b, byte(e.Kind))
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Data)))
	return append(b, e.Data...)
}

// decodeEntries decodes a count then that many entries.
func decodeEntries(b []byte) ([]Entry, error) {
	if len(b) < 4 {
		return nil, errors.New("msg: malformed entry list")
	}
	n := binary.BigEndian.Uint32(b)
	b = b[4:]
	var out []Entry
	for range n {
		e, rest, err := decodeEntry(b)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		b = rest
	}
	if len(b) != 0 {
		return nil, errors.New("msg: malformed entry list: trailing bytes")
	}
	return out, nil
}

// decodeEntry decodes one entry and returns the rest of b.
func decodeEntry(b []byte) (Entry, []byte, error) {
	const fixed = 8 + 8 + 1 + 4
	if len(b) < fixed {
		return Entry{}, nil, errors.New("msg: malformed entry")
	}
	n := binary.BigEndian.Uint32(b[17:])
	if uint64(len(b)-fixed) < uint64(n) {
		return Entry{}, nil, errors.New("msg: malformed entry: short data")
	}
	e := Entry{
		ID:       binary.BigEndian.Uint64(b),
		Received: time.UnixMilli(int64(binary.BigEndian.Uint64(b[8:]) & (1<<62 - 1))),
		Kind:     Kind(b[16]),
		Data:     append([]byte{}, b[fixed:fixed+int(n)]...),
	}
	return e, b[fixed+int(n):], nil
}
