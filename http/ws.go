package http

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// WebSocket subprotocols of GET /v1/ws. A browser, which cannot set
// headers on a WebSocket, passes its token as the subprotocol
// WSBearerPrefix+token; offering WSSubprotocol beside it keeps the token
// out of the response, which echoes the one subprotocol chosen.
const (
	// WSSubprotocol is alknet/call on WebSocket: one call envelope per
	// binary message.
	WSSubprotocol = "alknet.call"
	// WSBearerPrefix followed by a token authenticates the connection.
	WSBearerPrefix = "alknet.bearer."
)

// wsMaxMessage caps a message in either direction: the call protocol's
// frame limit.
const wsMaxMessage = call.DefaultMaxFrameBytes

// wsHandler serves GET /v1/ws: the native alknet/call protocol on a
// WebSocket, run by the call module's own session code, so that either
// side may call the other and a client that goes away aborts its calls.
func (s *Server) wsHandler() (http.Handler, error) {
	calls, err := call.New(call.Config{Registry: s.cfg.Registry, Identities: s.cfg.Identities, Peers: s.cfg.Peers, MaxFrameBytes: wsMaxMessage, Logger: s.logger})
	if err != nil {
		return nil, fmt.Errorf("http: WebSocket: %w", err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 {
			writeJSON(w, http.StatusUpgradeRequired, call.Errorf(call.CodeInvalidInput, "WebSocket is served on HTTP/1.1 only"))
			return
		}
		caller, proto, ok := s.wsCaller(w, r)
		if !ok {
			return
		}
		var opts websocket.AcceptOptions
		if proto != "" {
			opts.Subprotocols = []string{proto}
		}
		// Accept hijacks the connection, which lifts the server's read and
		// write timeouts: the writing of each message is bounded instead.
		ws, err := websocket.Accept(w, r, &opts)
		if err != nil {
			s.logger.Debug("http: WebSocket upgrade refused", "err", err)
			return // Accept has answered
		}
		ci := connOf(r.Context())
		st := &wsStream{ws: ws, writeTimeout: s.lim.WriteTimeout, lim: core.FrameLimitsOf(ci.conn)}
		peer := ci.peer
		peer.Identity = caller
		conn := &wsConn{Conn: core.NewStreamConn(st, ci.alpn, peer, s.logger), s: s, st: st}
		st.known = conn.known
		if caller != nil {
			conn.BindIdentity(*caller)
		}
		defer conn.unbind()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			select {
			case <-s.conns.done:
				st.close(websocket.StatusGoingAway, "server shutting down")
			case <-stop:
			}
		})
		// Serve returns once the WebSocket has ended and every call with it.
		// The WebSocket's end, not the request's context, ends the calls:
		// a revoked caller's socket is closed with 1008, which the request
		// context ending first would turn into a normal close.
		_ = calls.Serve(context.WithoutCancel(r.Context()), conn)
		close(stop)
		wg.Wait()
		st.close(websocket.StatusNormalClosure, "")
	}), nil
}

// wsConn is a WebSocket's core.Conn. It binds identities as core's
// connections do: the caller's, and the token of any call made on it, so
// that the WebSocket is closed with 1008 (policy violation) once one no
// longer stands (a reload removed it, its token was revoked or expired).
// core cannot, since the WebSocket rides a connection it may know as
// anonymous.
type wsConn struct {
	core.Conn
	s  *Server
	st *wsStream

	mu    sync.Mutex
	ids   []core.Identity // bound, each once
	stops []func()
	ended bool // unbound: the WebSocket is over
}

var _ core.IdentityBinder = (*wsConn)(nil)

// BindIdentity implements [core.IdentityBinder].
func (c *wsConn) BindIdentity(id core.Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended {
		return
	}
	for _, b := range c.ids {
		if reflect.DeepEqual(b, id) { // same credential, already watched
			return
		}
	}
	c.ids = append(c.ids, id)
	c.stops = append(c.stops, c.s.revoker.watch(&id, "WebSocket", func() {
		c.st.close(websocket.StatusPolicyViolation, "revoked")
	}))
}

// known reports whether an identity is bound: the caller's, or a token a
// call presented.
func (c *wsConn) known() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids) > 0
}

// unbind ends the watches.
func (c *wsConn) unbind() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended = true
	for _, stop := range c.stops {
		stop()
	}
	c.stops = nil
}

// wsCaller returns who the connection's calls run as and the subprotocol
// to answer with; it answers the request itself when it returns false. A
// token comes from the Authorization header (the middleware resolved it)
// or from the alknet.bearer subprotocol, never from the query string.
func (s *Server) wsCaller(w http.ResponseWriter, r *http.Request) (*core.Identity, string, bool) {
	var chosen, token string
	offered, hasToken := false, false
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			tok, isBearer := strings.CutPrefix(p, WSBearerPrefix)
			switch {
			case p == "":
				continue
			case p == WSSubprotocol:
				chosen = p
			case isBearer && hasToken:
				writeJSON(w, http.StatusBadRequest, call.Errorf(call.CodeInvalidInput, "more than one %s subprotocol", WSBearerPrefix))
				return nil, "", false
			case isBearer:
				token, hasToken = tok, true
			}
			offered = true
		}
	}
	switch {
	case chosen == "" && hasToken:
		chosen = WSBearerPrefix + token
	case chosen == "" && offered:
		writeJSON(w, http.StatusBadRequest, call.Errorf(call.CodeInvalidInput, "offer the %s subprotocol", WSSubprotocol))
		return nil, "", false
	}
	if !hasToken {
		return Caller(r.Context()), chosen, true
	}
	if r.Header.Get("Authorization") != "" {
		writeJSON(w, http.StatusBadRequest, call.Errorf(call.CodeInvalidInput, "a token both in Authorization and in the subprotocol"))
		return nil, "", false
	}
	var id core.Identity
	ok := false
	if s.cfg.Identities != nil && token != "" {
		id, ok = s.cfg.Identities.ByToken(token)
	}
	if !ok {
		s.rejectToken(w, r, token == "")
		return nil, "", false
	}
	return &id, chosen, true
}

// wsStream presents a WebSocket as the one stream of a single-stream
// core.Conn carrying length-prefixed call frames: a frame written is sent
// as one binary message without its length prefix (core.FrameHeaderBytes), and a message read is
// yielded with the prefix put back. WebSocket has no half-close: closing
// either direction closes both.
type wsStream struct {
	ws           *websocket.Conn
	writeTimeout time.Duration // bounds sending one message
	lim          core.FrameLimits
	known        func() bool // the peer may send a full-size message; nil: always (a client's server)

	// What is left of the frame being read: its length prefix, then the
	// message. Read's goroutine only.
	hdr  []byte
	rbuf []byte

	once sync.Once
}

// errTextMessage ends a session whose peer sent a text message.
var errTextMessage = errors.New("http: WebSocket: text message; alknet/call takes binary messages")

// Read yields the next message as a frame. A text message closes the
// WebSocket with 1003 (unsupported data); a message above the call
// protocol's frame limit (an anonymous caller's until one is known), with
// 1009 (message too big). A message is read as the call protocol reads a
// frame: its buffer grows with the bytes, charged to the connection's
// in-flight budget (past it: 1013, try again later), and it must arrive
// at the connection's minimum rate (else 1008). The peer's normal close is
// the end of the stream.
func (s *wsStream) Read(p []byte) (int, error) {
	if len(s.hdr) == 0 && len(s.rbuf) == 0 {
		msg, err := s.readMessage()
		if err != nil {
			return 0, err
		}
		s.hdr, s.rbuf = core.AppendFrameHeader(nil, len(msg)), msg
	}
	n := copy(p, s.hdr)
	s.hdr = s.hdr[n:]
	m := copy(p[n:], s.rbuf)
	s.rbuf = s.rbuf[m:]
	return n + m, nil
}

// readMessage reads the next binary message whole.
func (s *wsStream) readMessage() ([]byte, error) {
	// An anonymous caller's messages are small and charged to the budget
	// of the connection the WebSocket rides. A known caller's are not
	// (core counts that connection as anonymous: the identity lives in
	// the WebSocket), and are bounded by the frame limit, one at a time.
	max, lim := call.DefaultMaxAnonFrameBytes, s.lim
	if s.known == nil || s.known() {
		max, lim.Budget = wsMaxMessage, nil
	}
	s.ws.SetReadLimit(int64(max))
	typ, r, err := s.ws.Reader(context.Background())
	switch st := websocket.CloseStatus(err); {
	case st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway:
		return nil, io.EOF
	case err != nil:
		return nil, err
	case typ != websocket.MessageBinary:
		s.close(websocket.StatusUnsupportedData, "binary messages only")
		return nil, errTextMessage
	}
	if dl := lim.Deadline(time.Now(), max); !dl.IsZero() {
		slow := time.AfterFunc(time.Until(dl), func() { s.close(websocket.StatusPolicyViolation, "message too slow") })
		defer slow.Stop()
	}
	msg, err := lim.ReadAll(r, max)
	switch {
	case errors.Is(err, core.ErrTooLarge):
		s.close(websocket.StatusMessageTooBig, "message too big")
	case errors.Is(err, core.ErrOverBudget):
		s.close(websocket.StatusTryAgainLater, "busy")
	}
	return msg, err
}

// Write sends one whole frame, as the call session writes them, as one
// binary message. A message that cannot be sent within the write timeout
// closes the WebSocket.
func (s *wsStream) Write(p []byte) (int, error) {
	const h = core.FrameHeaderBytes
	if len(p) < h || uint64(binary.BigEndian.Uint32(p)) != uint64(len(p)-h) {
		return 0, errors.New("http: WebSocket: a write must be one whole frame")
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.writeTimeout)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageBinary, p[h:]); err != nil {
		return 0, err
	}
	return len(p), nil
}

// close closes the WebSocket with code, once; later calls do nothing.
func (s *wsStream) close(code websocket.StatusCode, reason string) {
	s.once.Do(func() { _ = s.ws.Close(code, reason) })
}

// Close closes the WebSocket normally.
func (s *wsStream) Close() error {
	s.close(websocket.StatusNormalClosure, "")
	return nil
}

// CloseWrite closes the WebSocket normally: there is no half-close.
func (s *wsStream) CloseWrite() error { return s.Close() }

// Abort closes the WebSocket with 1002 (protocol error) when the peer broke
// the call protocol (an empty message), else 1011 (internal error).
func (s *wsStream) Abort(code core.ErrorCode) {
	if code == core.CodeProtocol {
		s.close(websocket.StatusProtocolError, "bad call frame")
		return
	}
	s.close(websocket.StatusInternalError, code.String())
}

// errWSDeadline: a WebSocket stream bounds writes with its write timeout
// and ends reads by closing.
var errWSDeadline = fmt.Errorf("http: WebSocket stream deadlines: %w", errors.ErrUnsupported)

// SetDeadline is not supported.
func (s *wsStream) SetDeadline(time.Time) error { return errWSDeadline }

// SetReadDeadline is not supported.
func (s *wsStream) SetReadDeadline(time.Time) error { return errWSDeadline }

// SetWriteDeadline is not supported.
func (s *wsStream) SetWriteDeadline(time.Time) error { return errWSDeadline }
