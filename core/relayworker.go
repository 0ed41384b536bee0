package core

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// ServeRelayed serves nc, a connection relayed to this node by a head, as
// an accepted TCP connection: the same admission and limits (it counts
// against the source of nc's RemoteAddr: for a [RelayAddr], the head's
// address), the same TLS handshake with the node certificate, dispatch by
// the negotiated ALPN, identity binding and idle timeouts. It returns at
// once; the endpoint owns nc from the call on and closes it when the
// connection ends. It returns an error, having closed nc, when the
// endpoint is not serving or a limit refuses the connection.
func (e *Endpoint) ServeRelayed(nc net.Conn) error {
	t, err := e.admit(e.source(nc.RemoteAddr()))
	if err != nil {
		nc.Close()
		return err
	}
	go e.serveTCP(t, nc)
	return nil
}

// Reconnection backoff of [Endpoint.ListenVia].
const (
	relayMinBackoff = time.Second
	relayMaxBackoff = 60 * time.Second
	// relaySlowRetry is the retry of a head that does not serve the relay
	// or refuses this node: a config change, not a network hiccup, fixes
	// it.
	relaySlowRetry = 5 * time.Minute
)

// ListenVia keeps this endpoint reachable through the head at head
// ("[<nodeid>@]host:port"): it dials the head over QUIC with d (whose Key
// must be the endpoint's node key, as the head registers the connection
// under the key it presents), registers with a listen request, and serves
// every relayed stream the head opens as a connection of its own
// ([Endpoint.ServeRelayed]), refusing an ALPN this endpoint does not route.
// When the registration ends it dials again after a backoff that starts at
// 1 s and doubles to 60 s (reset by a registration that lasted); a head
// that does not serve [RelayALPN] or refuses the registration is logged
// once and retried every 5 minutes. ListenVia returns when ctx ends.
func (e *Endpoint) ListenVia(ctx context.Context, d *Dialer, head string) error {
	if d == nil || d.Network != NetworkQUIC {
		return errors.New("core: ListenVia needs a QUIC-only Dialer")
	}
	logger := e.logger.With("head", head)
	backoff := relayMinBackoff
	warned := false
	for {
		start := time.Now()
		registered, err := e.listenVia(ctx, d, head, logger)
		if ctx.Err() != nil {
			return nil
		}
		if registered {
			warned = false
		}
		wait := backoff
		var re *RelayError
		switch {
		case errors.As(err, &re), isNoALPN(err):
			wait = relaySlowRetry
			if !warned {
				logger.Warn("relay: the head does not relay for this node; retrying slowly", "err", err, "retry_in", wait)
				warned = true
			}
		case err != nil:
			logger.Warn("relay: registration with head ended", "err", err, "retry_in", wait)
		}
		if time.Since(start) > relayMaxBackoff {
			backoff = relayMinBackoff
		} else {
			backoff = min(2*backoff, relayMaxBackoff)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// isNoALPN reports whether a dial failed because the node serves no such
// ALPN (TLS's no_application_protocol alert).
func isNoALPN(err error) bool {
	var ae tls.AlertError
	if errors.As(err, &ae) && ae == 120 {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "no application protocol")
}

// listenVia runs one registration until it ends; registered reports
// whether the head accepted it.
func (e *Endpoint) listenVia(ctx context.Context, d *Dialer, head string, logger *slog.Logger) (registered bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, relayHeaderTimeout+5*time.Second)
	// From the listening socket: the address the head sees is then the
	// one a client's punched dial reaches (docs/protocols/relay.md). A
	// listening socket that cannot reach the head (bound to loopback, or
	// to the other address family) leaves the relay to a socket of its
	// own, without punching.
	hc, err := d.Dial(withTransport(dctx, e.tr), head, RelayALPN)
	if err != nil && !errors.Is(err, errIdentity) && dctx.Err() == nil {
		logger.Debug("relay: the listening socket does not reach the head; registering from another (no punching)", "err", err)
		hc, err = d.Dial(dctx, head, RelayALPN)
	}
	if err != nil {
		cancel()
		return false, err
	}
	var wg sync.WaitGroup // the control stream's reader and the accepts
	defer func() {
		_ = hc.CloseWithError(CodeNoError, "")
		wg.Wait()
	}()
	ctrl, err := hc.OpenStream(dctx)
	if err == nil {
		err = writeRelayHeader(ctrl, relayRequest{Op: relayOpListen})
	}
	if err == nil {
		_, err = readRelayReply(ctrl, time.Now().Add(relayHeaderTimeout), head)
	}
	cancel()
	if err != nil {
		return false, err
	}
	if !hc.MultiStream() {
		return false, errors.New("core: relay registration over a single-stream connection")
	}
	logger.Info("relay: registered with head", "node", hc.Peer().NodeID.ShortString())
	e.relayHead.Store(&head)
	defer e.relayHead.Store(nil)
	// The head ends the registration by closing the control stream (or
	// the connection); this side by closing the connection.
	wg.Go(func() {
		var b [1]byte
		_, _ = ctrl.Read(b[:])
		_ = hc.CloseWithError(CodeNoError, "")
	})
	stop := context.AfterFunc(ctx, func() { _ = hc.CloseWithError(CodeShutdown, "") })
	defer stop()
	for {
		s, err := hc.AcceptStream(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return true, nil
			}
			return true, fmt.Errorf("core: relay registration: %w", err)
		}
		wg.Go(func() { e.acceptRelayed(hc, s, logger) })
	}
}

// acceptRelayed answers one accept from the head and hands the stream to
// the endpoint.
func (e *Endpoint) acceptRelayed(hc Conn, s Stream, logger *slog.Logger) {
	b, err := readRelayFrame(s, FrameLimits{}, time.Now().Add(relayHeaderTimeout))
	if err != nil {
		s.Abort(CodeProtocol)
		return
	}
	req, err := decodeRelayRequest(b)
	if err == nil && req.Op == relayOpPunch && req.From != "" {
		e.answerPunch(s, req, logger)
		return
	}
	if err != nil || req.Op != relayOpAccept {
		if err == nil {
			err = fmt.Errorf("%w: unexpected op %q", errBadRelayHeader, req.Op)
		}
		refuseRelay(s, RelayBadRequest, Clip(err.Error()))
		return
	}
	if _, ok := e.cfg.Router.Handler(req.ALPN); !ok || req.ALPN == acmeALPN {
		refuseRelay(s, RelayRefused, "no such alpn")
		return
	}
	if err := writeRelayHeader(s, relayReply{OK: true}); err != nil {
		s.Abort(CodeInternal)
		return
	}
	logger.Debug("relay: relayed connection", "from", req.From, "alpn", req.ALPN)
	var local net.Addr = RelayAddr{}
	if a := e.Addr(); a != nil {
		local = a
	}
	nc := &relayNetConn{Stream: s, local: local, remote: RelayAddr{Head: hc.Peer().RemoteAddr, From: req.From}}
	if err := e.ServeRelayed(nc); err != nil {
		logger.Debug("relay: relayed connection refused", "err", err)
	}
}
