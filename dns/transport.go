package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/core"
)

// DoQ error codes (RFC 9250 §4.3), sent in CONNECTION_CLOSE and
// RESET_STREAM on doq and alknet/dns.
const (
	DoQNoError          core.ErrorCode = 0x0
	DoQInternalError    core.ErrorCode = 0x1
	DoQProtocolError    core.ErrorCode = 0x2
	DoQRequestCancelled core.ErrorCode = 0x3
	DoQExcessiveLoad    core.ErrorCode = 0x4
	DoQUnspecifiedError core.ErrorCode = 0x5
)

// Serve serves one connection: on doq and alknet/dns one query per stream
// (RFC 9250), on dot pipelined queries answered as they complete
// (RFC 7858). It returns when the connection ends, or when ctx ends and the
// queries in flight are answered. A peer breaking the framing gets its
// connection closed with DOQ_PROTOCOL_ERROR.
func (s *Server) Serve(ctx context.Context, conn core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil // the connection or the endpoint ended
		}
		wg.Go(func() {
			if conn.ALPN() == ALPNDoT {
				s.serveDoT(ctx, conn, st)
				return
			}
			s.serveDoQ(conn, st)
		})
	}
}

// serveDoQ answers the one request of a DoQ stream.
func (s *Server) serveDoQ(conn core.Conn, st core.Stream) {
	_ = st.SetDeadline(time.Now().Add(s.cfg.IdleTimeout))
	msg, err := readFrame(st, minMessageBytes, core.FrameLimitsOf(conn).Budget)
	if err == nil {
		err = expectFIN(st)
	}
	if err != nil {
		s.protocolError(conn, st, err)
		return
	}
	var out []byte
	switch {
	case binary.BigEndian.Uint16(msg) == 0:
		out, err = s.answerStream(msg, true)
	case conn.ALPN() == ALPN:
		out, err = s.serveRequest(conn, msg)
	default:
		err = errors.New("message ID is not 0")
	}
	if err != nil {
		s.protocolError(conn, st, err)
		return
	}
	if _, err := st.Write(appendFrame(nil, out)); err != nil {
		st.Abort(DoQInternalError)
		return
	}
	_ = st.Close()
}

// expectFIN reads what follows the query: the client's FIN.
func expectFIN(st core.Stream) error {
	var b [1]byte
	n, err := st.Read(b[:])
	switch {
	case n > 0:
		return errors.New("data after the query")
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return expectFIN(st)
	}
	return err
}

// protocolError ends conn with DOQ_PROTOCOL_ERROR (RFC 9250 §4.3.1); a
// timeout or a query over the in-flight budget ends only the stream.
func (s *Server) protocolError(conn core.Conn, st core.Stream, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		st.Abort(DoQProtocolError)
		conn.Logger().Debug("dns: stream timed out")
		return
	}
	if errors.Is(err, core.ErrOverBudget) {
		// The connection's queries in flight hold too much: refuse this
		// stream, not the connection.
		st.Abort(DoQExcessiveLoad)
		conn.Logger().Debug("dns: query over the in-flight budget; refusing the stream")
		return
	}
	conn.Logger().Warn("dns: protocol error", "err", err)
	st.Abort(DoQProtocolError)
	_ = conn.CloseWithError(DoQProtocolError, "protocol error")
}

// answerStream answers one query read from a stream transport. doq
// enforces RFC 9250's rule against the edns-tcp-keepalive option.
func (s *Server) answerStream(msg []byte, doq bool) ([]byte, error) {
	req := new(mdns.Msg)
	if err := req.Unpack(msg); err != nil {
		return formErr(msg), nil
	}
	if opt := req.IsEdns0(); doq && opt != nil {
		for _, o := range opt.Option {
			if o.Option() == mdns.EDNS0TCPKEEPALIVE {
				return nil, errors.New("edns-tcp-keepalive option in a DoQ query")
			}
		}
	}
	resp := s.Answer(req, 0)
	if resp == nil {
		return nil, errors.New("a response where a query was expected")
	}
	out, err := resp.Pack()
	if err != nil {
		resp = new(mdns.Msg)
		resp.SetRcode(req, mdns.RcodeServerFailure)
		return resp.Pack()
	}
	return out, nil
}

// formErr is a FORMERR answer to a message whose header is all that
// could be read.
func formErr(msg []byte) []byte {
	resp := make([]byte, minMessageBytes)
	copy(resp, msg[:2])                   // ID
	resp[2] = 0x80 | msg[2]&0x79          // QR, opcode and RD of the query
	resp[3] = byte(mdns.RcodeFormatError) // RCODE
	return resp
}

// serveDoT answers the pipelined queries of a DoT stream, each as soon as
// it is ready, at most MaxInflight at once.
func (s *Server) serveDoT(ctx context.Context, conn core.Conn, st core.Stream) {
	stop := context.AfterFunc(ctx, func() { _ = st.SetReadDeadline(time.Now()) })
	defer stop()
	var (
		wg     sync.WaitGroup
		wmu    sync.Mutex
		failed bool
	)
	sem := make(chan struct{}, s.cfg.MaxInflight)
	for {
		_ = st.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		if ctx.Err() != nil {
			break
		}
		msg, err := readFrame(st, minMessageBytes, core.FrameLimitsOf(conn).Budget)
		if err != nil {
			if errors.Is(err, errFraming) {
				conn.Logger().Warn("dns: protocol error", "err", err)
				failed = true
			}
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out, err := s.answerStream(msg, false)
			if err != nil {
				return // a response sent as a query: no answer
			}
			wmu.Lock()
			defer wmu.Unlock()
			_ = st.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout))
			_, _ = st.Write(appendFrame(nil, out))
		})
	}
	wg.Wait()
	if failed {
		st.Abort(DoQProtocolError)
		return
	}
	_ = st.CloseWrite()
}
