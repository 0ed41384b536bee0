package msg

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
)

// Session is a client connection to one node's alknet/msg service. Its
// requests run one at a time on one stream; it is safe for concurrent use.
type Session struct {
	conn core.Conn

	mu     sync.Mutex
	stream core.Stream
}

// Dial connects to addr ("NODEID@HOST:PORT", or what d accepts) with d.
func Dial(ctx context.Context, d *core.Dialer, addr string) (*Session, error) {
	c, err := d.Dial(ctx, addr, ALPN)
	if err != nil {
		return nil, fmt.Errorf("msg: dial: %w", err)
	}
	return NewSession(c), nil
}

// NewSession uses conn (negotiated for alknet/msg), which it then owns.
func NewSession(conn core.Conn) *Session { return &Session{conn: conn} }

// Peer describes the node at the other end.
func (s *Session) Peer() core.Peer { return s.conn.Peer() }

// Close closes the connection.
func (s *Session) Close() error { return s.conn.CloseWithError(core.CodeNoError, "") }

// Done returns a channel closed when the connection ends.
func (s *Session) Done() <-chan struct{} { return s.conn.Context().Done() }

// request sends one request and returns the answer's body; a refusal is a
// *RemoteError.
func (s *Session) request(ctx context.Context, t op, body []byte, maxResp int) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream == nil {
		st, err := s.conn.OpenStream(ctx)
		if err != nil {
			return nil, fmt.Errorf("msg: open stream: %w", err)
		}
		s.stream = st
	}
	st := s.stream
	stop := context.AfterFunc(ctx, func() { st.Abort(core.CodeNoError) })
	defer stop()
	fail := func(err error) ([]byte, error) {
		st.Abort(core.CodeNoError)
		s.stream = nil
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("msg: request: %w", err)
	}
	if err := writeFrame(st, t, body); err != nil {
		return fail(err)
	}
	rt, resp, err := readFrame(st, maxResp, core.FrameLimits{})
	if err != nil {
		return fail(err)
	}
	switch rt {
	case respOK:
		return resp, nil
	case respError:
		return nil, decodeError(resp)
	}
	return fail(fmt.Errorf("unexpected response type %#x", byte(rt)))
}

// maxEntriesFrame bounds a fetch answer: maxFetch entries of the largest
// envelope this client accepts.
func maxEntriesFrame(maxBody int) int {
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	return 5 + maxFetch*(21+MaxEnvelopeBytes(maxBody))
}

// Deliver hands an envelope to the node, which keeps it for its recipient
// (the node itself or one it hosts).
func (s *Session) Deliver(ctx context.Context, env []byte) error {
	_, err := s.request(ctx, opDeliver, env, maxControlFrame)
	return err
}

// Key asks the node for the key record of node (itself or one it hosts)
// and verifies it.
func (s *Session) Key(ctx context.Context, node core.NodeID) (KeyRecord, error) {
	b, err := s.request(ctx, opKey, node.PublicKey(), maxControlFrame)
	if err != nil {
		return KeyRecord{}, err
	}
	r, err := ParseKeyRecord(b)
	if err != nil {
		return KeyRecord{}, err
	}
	if r.Node != node {
		return KeyRecord{}, errors.New("msg: key record for another node")
	}
	return r, nil
}

// Fetch returns up to limit (1 to 64; other values mean 64) entries of
// this client's own inbox on the node, after the given entry id.
func (s *Session) Fetch(ctx context.Context, after uint64, limit int) ([]Entry, error) {
	body := binary.BigEndian.AppendUint64(nil, after)
	body = binary.BigEndian.AppendUint32(body, uint32(max(0, min(limit, maxFetch))))
	b, err := s.request(ctx, opFetch, body, maxEntriesFrame(0))
	if err != nil {
		return nil, err
	}
	return decodeEntries(b)
}

// Ack removes entries of this client's inbox and returns how many were
// there.
func (s *Session) Ack(ctx context.Context, ids ...uint64) (int, error) {
	var body []byte
	for _, id := range ids {
		body = binary.BigEndian.AppendUint64(body, id)
	}
	b, err := s.request(ctx, opAck, body, maxControlFrame)
	if err != nil {
		return 0, err
	}
	if len(b) != 4 {
		return 0, errors.New("msg: malformed ack answer")
	}
	return int(binary.BigEndian.Uint32(b)), nil
}

// Watch streams this client's inbox entries after the given id, now and
// as they arrive, to fn, until ctx ends (returning ctx.Err()), fn fails,
// or the connection ends. It uses a stream of its own: over TCP+TLS, whose
// connection carries one stream, watch on a session used for nothing else.
func (s *Session) Watch(ctx context.Context, after uint64, fn func(Entry) error) error {
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		return fmt.Errorf("msg: open stream: %w", err)
	}
	defer st.Abort(core.CodeNoError)
	stop := context.AfterFunc(ctx, func() { st.Abort(core.CodeNoError) })
	defer stop()
	if err := writeFrame(st, opWatch, binary.BigEndian.AppendUint64(nil, after)); err != nil {
		return fmt.Errorf("msg: watch: %w", err)
	}
	for {
		t, b, err := readFrame(st, maxEntriesFrame(0), core.FrameLimits{})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("msg: watch: %w", err)
		}
		switch t {
		case respOK:
			continue
		case respError:
			return decodeError(b)
		case respEntry:
			e, rest, err := decodeEntry(b)
			if err != nil || len(rest) != 0 {
				return errors.New("msg: watch: malformed entry")
			}
			if err := fn(e); err != nil {
				return err
			}
		default:
			return fmt.Errorf("msg: watch: unexpected frame %#x", byte(t))
		}
	}
}

// Send seals m from the node key sender to m.To, whose key record the
// session's node provides (m.To itself, or its home node), and delivers
// it there. It returns the message as sealed.
func (s *Session) Send(ctx context.Context, sender ed25519.PrivateKey, m Message) (Message, error) {
	rec, err := s.Key(ctx, m.To)
	if err != nil {
		return m, err
	}
	return s.SendTo(ctx, sender, rec.Key, m)
}

// SendTo is Send with the recipient's messaging key already known.
func (s *Session) SendTo(ctx context.Context, sender ed25519.PrivateKey, to *ecdh.PublicKey, m Message) (Message, error) {
	env, m, err := Seal(sender, to, m)
	if err != nil {
		return m, err
	}
	return m, s.Deliver(ctx, env)
}

// relay hands a Sphinx packet to a mix.
func (s *Session) relay(ctx context.Context, packet []byte) error {
	_, err := s.request(ctx, opRelay, packet, maxControlFrame)
	return err
}

// exit delivers an exit payload to the destination's home node.
func (s *Session) exit(ctx context.Context, body []byte) error {
	_, err := s.request(ctx, opExit, body, maxControlFrame)
	return err
}

// sessionTimeout bounds one forwarded request of a mix.
const sessionTimeout = 10 * time.Second
