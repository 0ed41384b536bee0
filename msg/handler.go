package msg

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg/sphinx"
)

// Scopes of the msg service.
const (
	// SendScope lets an identity deposit envelopes into a node's inboxes.
	SendScope = "msg:send"
	// RelayScope lets an identity hand Sphinx packets to a mix, and an exit
	// mix deliver their payloads.
	RelayScope = "msg:relay"
)

// maxControlFrame bounds frames that carry no envelope or packet.
const maxControlFrame = 64 << 10

// Config configures a Handler.
type Config struct {
	// NodeKey is the node's Ed25519 key; it signs the node's key record.
	// Required.
	NodeKey ed25519.PrivateKey
	// Key is the node's X25519 messaging key (see [NewKey]). Required.
	Key *ecdh.PrivateKey
	// Inbox stores envelopes; required. The handler does not close it.
	Inbox *Inbox
	// Hosted are the key records of the other recipients whose envelopes
	// this node keeps (the node itself is always hosted). Each must verify.
	Hosted []KeyRecord
	// Deposit decides who may deliver envelopes. Nil requires the msg:send
	// scope.
	Deposit *core.AccessControl
	// Relay decides who may hand packets to the mix and deliver exit
	// payloads. Nil requires the msg:relay scope.
	Relay *core.AccessControl
	// Mix relays Sphinx packets and serves its key records; nil refuses
	// them.
	Mix *Mix
	// Directory is the mix directory this node publishes, served to any
	// peer; nil serves none.
	Directory *Publisher
	// MaxBodyBytes caps message bodies; zero means DefaultMaxBodyBytes.
	MaxBodyBytes int
	// Skew is the accepted clock difference; zero means DefaultSkew.
	Skew time.Duration
	// Clock returns the time; nil means time.Now.
	Clock func() time.Time
	// Logger receives the handler's logs; nil means slog.Default().
	Logger *slog.Logger
}

// Handler serves alknet/msg: envelope delivery into the inboxes of this
// node and its hosted recipients, inbox fetch, acknowledgement and watch
// for the recipients themselves (authenticated by their TLS node key), key
// records, with a Mix Sphinx relaying and the mix's key records, and with
// a Publisher the signed mix directory. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	id      core.NodeID
	opener  Opener
	record  KeyRecord
	hosted  map[core.NodeID]KeyRecord
	deposit core.AccessControl
	relay   core.AccessControl
	clock   func() time.Time
	logger  *slog.Logger
	frags   *reassembler
}

var _ core.Handler = (*Handler)(nil)

// New validates cfg and returns a handler. It starts no goroutines.
func New(cfg Config) (*Handler, error) {
	var errs []error
	if len(cfg.NodeKey) != ed25519.PrivateKeySize {
		errs = append(errs, errors.New("msg: Config.NodeKey: required"))
	}
	if cfg.Key == nil || cfg.Key.Curve() != ecdh.X25519() {
		errs = append(errs, errors.New("msg: Config.Key: want an X25519 key"))
	}
	if cfg.Inbox == nil {
		errs = append(errs, errors.New("msg: Config.Inbox: required"))
	}
	if cfg.MaxBodyBytes < 0 {
		errs = append(errs, errors.New("msg: Config.MaxBodyBytes: negative"))
	}
	if cfg.Skew < 0 {
		errs = append(errs, errors.New("msg: Config.Skew: negative"))
	}
	hosted := make(map[core.NodeID]KeyRecord)
	for i, r := range cfg.Hosted {
		if err := r.Verify(); err != nil {
			errs = append(errs, fmt.Errorf("msg: Config.Hosted[%d]: %w", i, err))
		}
		hosted[r.Node] = r
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Skew == 0 {
		cfg.Skew = DefaultSkew
	}
	h := &Handler{
		cfg:     cfg,
		hosted:  hosted,
		deposit: core.AccessControl{AllScopes: []string{SendScope}},
		relay:   core.AccessControl{AllScopes: []string{RelayScope}},
		clock:   cfg.Clock,
		logger:  cfg.Logger,
	}
	if cfg.Deposit != nil {
		h.deposit = *cfg.Deposit
	}
	if cfg.Relay != nil {
		h.relay = *cfg.Relay
	}
	if h.clock == nil {
		h.clock = time.Now
	}
	if h.logger == nil {
		h.logger = slog.Default()
	}
	rec, err := SignKeyRecord(cfg.NodeKey, cfg.Key.PublicKey())
	if err != nil {
		return nil, err
	}
	h.record, h.id = rec, rec.Node
	h.hosted[h.id] = rec
	h.opener = Opener{Key: cfg.Key, NodeID: h.id, MaxBodyBytes: cfg.MaxBodyBytes, Skew: cfg.Skew}
	h.frags = newReassembler(h.clock)
	return h, nil
}

// ALPNs returns alknet/msg.
func (h *Handler) ALPNs() []string { return []string{ALPN} }

// KeyRecord returns the node's signed messaging key record.
func (h *Handler) KeyRecord() KeyRecord { return h.record }

// maxRelayBytes is the largest relay or exit request: a Sphinx packet, or
// a destination, SURB id and payload.
const maxRelayBytes = max(sphinx.PacketSize, sphinx.IDSize+sphinx.SURBIDSize+sphinx.PayloadSize)

// maxFrame is the largest request frame p may send: an envelope at the
// body limit if p is known, has an inbox here or deposits are public; a
// relay request if relaying is public; else the largest lookup (a node
// id), so an anonymous peer cannot make the node hold what it has no right
// to send.
func (h *Handler) maxFrame(p core.Peer) int {
	_, hosted := h.hosted[p.NodeID]
	switch {
	case p.Identity != nil, h.deposit.Public, hosted && !p.NodeID.IsZero():
		return 1 + MaxEnvelopeBytes(h.cfg.MaxBodyBytes)
	case h.relay.Public:
		return 1 + maxRelayBytes
	}
	return 1 + KeySize
}

// Serve answers the requests of every stream of conn until the peer
// closes it or ctx ends. When ctx ends a stream waiting for its next
// request ends, and a request that has begun to arrive is answered first
// (the endpoint's drain); a watch ends at once.
func (h *Handler) Serve(ctx context.Context, conn core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.serveStream(ctx, conn, st)
		}()
	}
}

// serveStream answers requests on st one after another until EOF.
func (h *Handler) serveStream(ctx context.Context, conn core.Conn, st core.Stream) {
	g := &requestGate{Stream: st}
	stop := context.AfterFunc(ctx, g.stop)
	defer stop()
	defer st.Close()
	max, lim := h.maxFrame(conn.Peer()), core.FrameLimitsOf(conn)
	for {
		t, body, err := readFrame(g, max, lim)
		switch {
		case errors.Is(err, io.EOF):
			return
		case errors.Is(err, core.ErrOverBudget):
			conn.Logger().Debug("msg: frame over the in-flight budget; refusing the stream")
			st.Abort(core.CodeBusy)
			return
		case err != nil:
			conn.Logger().Debug("msg stream ended", "err", err)
			st.Abort(core.CodeProtocol)
			return
		}
		if t == opWatch {
			if g.idle() { // a watch is never drained: it ends with ctx
				h.watch(ctx, conn, st, body)
			}
			return
		}
		resp, status, reason := h.request(ctx, conn, t, body)
		if status != 0 {
			err = writeFrame(st, respError, errorBody(status, reason))
		} else {
			err = writeFrame(st, respOK, resp)
		}
		if err != nil || !g.idle() {
			return
		}
	}
}

// requestGate is a stream that knows whether a request is under way: from
// the first byte of a request until its answer was written. Stopping it
// aborts a stream waiting for a request at once, and one with a request
// under way after its answer.
type requestGate struct {
	core.Stream

	mu       sync.Mutex
	busy     bool
	stopping bool
}

// Read implements io.Reader, marking the stream busy once bytes arrive.
func (g *requestGate) Read(p []byte) (int, error) {
	n, err := g.Stream.Read(p)
	if n > 0 {
		g.mu.Lock()
		g.busy = true
		g.mu.Unlock()
	}
	return n, err
}

// stop ends the stream, at once if no request is under way.
func (g *requestGate) stop() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.stopping = true
	if !g.busy {
		g.Stream.Abort(core.CodeNoError)
	}
}

// idle marks the request answered; it reports false if the stream is
// stopping, and must end.
func (g *requestGate) idle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy = false
	return !g.stopping
}

// request answers one request: a response body, or a status and reason.
func (h *Handler) request(ctx context.Context, conn core.Conn, t op, body []byte) ([]byte, Status, string) {
	p := conn.Peer()
	switch t {
	case opDeliver:
		if err := h.deposit.Check(p.Identity); err != nil {
			core.LogAuth(h.logger, core.AuthReject, ALPN, p, p.Identity)
			return nil, StatusForbidden, "deposit needs " + SendScope
		}
		return h.deliver(body)
	case opFetch, opAck:
		if _, ok := h.hosted[p.NodeID]; !ok || p.NodeID.IsZero() {
			return nil, StatusNotHosted, "no inbox for this key"
		}
		if t == opFetch {
			return h.fetch(p.NodeID, body)
		}
		return h.ack(p.NodeID, body)
	case opKey:
		id, err := core.NodeIDFromPublicKey(ed25519.PublicKey(body))
		if err != nil || len(body) != KeySize {
			return nil, StatusMalformed, "want a node id"
		}
		rec, ok := h.hosted[id]
		if !ok {
			return nil, StatusNotAvailable, "no key record for that node"
		}
		b, _ := rec.MarshalBinary()
		return b, 0, ""
	case opMixKey:
		if h.cfg.Mix == nil {
			return nil, StatusUnsupported, "not a mix"
		}
		if len(body) != 8 {
			return nil, StatusMalformed, "want an epoch"
		}
		rec, err := h.cfg.Mix.KeyRecord(binary.BigEndian.Uint64(body))
		if err != nil {
			return nil, StatusNotAvailable, "no key for that epoch"
		}
		b, _ := rec.MarshalBinary()
		return b, 0, ""
	case opDirectory:
		var b []byte
		if h.cfg.Directory != nil {
			b = h.cfg.Directory.Signed()
		}
		if b == nil {
			return nil, StatusNotAvailable, "no mix directory here"
		}
		return b, 0, ""
	case opRelay, opExit:
		if err := h.relay.Check(p.Identity); err != nil {
			core.LogAuth(h.logger, core.AuthReject, ALPN, p, p.Identity)
			return nil, StatusForbidden, "relaying needs " + RelayScope
		}
		if t == opExit {
			return h.exit(body)
		}
		if h.cfg.Mix == nil {
			return nil, StatusUnsupported, "not a mix"
		}
		if err := h.cfg.Mix.Accept(body); err != nil {
			return nil, relayStatus(err), err.Error()
		}
		return nil, 0, ""
	}
	return nil, StatusUnsupported, fmt.Sprintf("unknown request type %#x", byte(t))
}

// deliver stores an envelope for a hosted recipient; envelopes for this
// node are opened and checked first.
func (h *Handler) deliver(env []byte) ([]byte, Status, string) {
	to, err := Recipient(env)
	if err != nil {
		return nil, StatusMalformed, "bad envelope header"
	}
	if _, ok := h.hosted[to]; !ok {
		return nil, StatusNotHosted, "recipient not hosted here"
	}
	if len(env) > MaxEnvelopeBytes(h.cfg.MaxBodyBytes) {
		return nil, StatusTooLarge, "envelope above the limit"
	}
	if to != h.id {
		_, err = h.cfg.Inbox.Deposit(to, KindEnvelope, env)
		return nil, depositStatus(err), reasonOf(err)
	}
	now := h.clock()
	m, err := h.opener.Open(env, now)
	if err != nil {
		h.logger.Debug("msg envelope refused", "err", err)
		if errors.Is(err, ErrTooLarge) {
			return nil, StatusTooLarge, "body above the limit"
		}
		return nil, StatusRejected, "envelope refused"
	}
	_, err = h.cfg.Inbox.DepositMessage(m, env, m.Time.Add(h.cfg.Skew))
	return nil, depositStatus(err), reasonOf(err)
}

// depositStatus maps an inbox error to a status; nil is 0.
func depositStatus(err error) Status {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrQuota):
		return StatusQuota
	case errors.Is(err, ErrDuplicate):
		return StatusDuplicate
	}
	return StatusInternal
}

// reasonOf is the peer-visible reason of a deposit error.
func reasonOf(err error) string {
	switch s := depositStatus(err); s {
	case 0, StatusInternal:
		return ""
	default:
		return s.String()
	}
}

// maxFetch bounds the entries of one fetch answer.
const maxFetch = 64

// fetch lists the peer's entries after an id.
func (h *Handler) fetch(to core.NodeID, body []byte) ([]byte, Status, string) {
	if len(body) != 12 {
		return nil, StatusMalformed, "want after and limit"
	}
	limit := int(binary.BigEndian.Uint32(body[8:]))
	if limit <= 0 || limit > maxFetch {
		limit = maxFetch
	}
	entries, err := h.cfg.Inbox.List(to, binary.BigEndian.Uint64(body), limit)
	if err != nil {
		h.logger.Error("msg inbox list failed", "err", err)
		return nil, StatusInternal, ""
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(len(entries)))
	for _, e := range entries {
		out = appendEntry(out, e)
	}
	return out, 0, ""
}

// ack removes the peer's entries.
func (h *Handler) ack(to core.NodeID, body []byte) ([]byte, Status, string) {
	if len(body)%8 != 0 || len(body) > 8*1024 {
		return nil, StatusMalformed, "want up to 1024 ids"
	}
	ids := make([]uint64, 0, len(body)/8)
	for i := 0; i < len(body); i += 8 {
		ids = append(ids, binary.BigEndian.Uint64(body[i:]))
	}
	n, err := h.cfg.Inbox.Ack(to, ids...)
	if err != nil {
		h.logger.Error("msg inbox ack failed", "err", err)
		return nil, StatusInternal, ""
	}
	return binary.BigEndian.AppendUint32(nil, uint32(n)), 0, ""
}

// watch pushes the peer's entries after an id, now and as they arrive,
// until the stream or ctx ends.
func (h *Handler) watch(ctx context.Context, conn core.Conn, st core.Stream, body []byte) {
	p := conn.Peer()
	if _, ok := h.hosted[p.NodeID]; !ok || p.NodeID.IsZero() {
		_ = writeFrame(st, respError, errorBody(StatusNotHosted, "no inbox for this key"))
		return
	}
	if len(body) != 8 {
		_ = writeFrame(st, respError, errorBody(StatusMalformed, "want after"))
		return
	}
	if err := writeFrame(st, respOK, nil); err != nil {
		return
	}
	// A watch waits for entries: work in flight, not an idle connection.
	defer core.Hold(conn)()
	// The watcher sends nothing more: its EOF or reset ends the watch.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		_, _ = io.Copy(io.Discard, st)
	}()
	defer st.Abort(core.CodeNoError)
	err := h.cfg.Inbox.Follow(ctx, p.NodeID, binary.BigEndian.Uint64(body), func(e Entry) error {
		return writeFrame(st, respEntry, appendEntry(nil, e))
	})
	if err != nil && ctx.Err() == nil {
		conn.Logger().Debug("msg watch ended", "err", err)
	}
}
