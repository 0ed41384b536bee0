package core_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// waitClosed waits up to limit for c to close and returns its cause.
func waitClosed(t *testing.T, c core.Conn, limit time.Duration) error {
	t.Helper()
	select {
	case <-c.Context().Done():
		return context.Cause(c.Context())
	case <-time.After(limit):
		return nil
	}
}

// TestAppIdleTimeout: a connection with nothing in flight is closed after
// the application idle timeout even though QUIC keep-alives flow; one with
// an open stream, or a known peer's, is kept.
func TestAppIdleTimeout(t *testing.T) {
	key := coretest.NewKey(t)
	live := core.NewLiveDirectory(mustDir(t, []core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{coretest.NodeID(key)}}}, nil), nil)
	n := coretest.Start(t, core.Config{Identities: live, Limits: core.Limits{
		AppIdleTimeout: time.Second, KnownAppIdleTimeout: 5 * time.Second, KeepAlive: time.Second,
	}}, echo{[]string{"test/a"}})

	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		t.Run("anonymous idle/"+string(network), func(t *testing.T) {
			c := n.Dial(t, network, nil, "test/a")
			if network == core.NetworkQUIC {
				// Keep-alives are not work.
				start := time.Now()
				err := waitClosed(t, c, 5*time.Second)
				var ae *quic.ApplicationError
				if !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(core.CodeIdle) {
					t.Fatalf("closed with %v, want the idle code", err)
				}
				if d := time.Since(start); d < 900*time.Millisecond {
					t.Errorf("closed after %v, before the 1s timeout", d)
				}
				return
			}
			// TCP: the one stream sits idle after the handshake.
			s, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := s.Read(make([]byte, 1)); isTimeout(err) {
				t.Fatal("idle TCP connection still open after 5s")
			}
		})
	}
	t.Run("open stream keeps it", func(t *testing.T) {
		c := n.Dial(t, core.NetworkQUIC, nil, "test/a")
		s, err := c.OpenStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s.Write([]byte("x")) // the server sees the stream once it carries data
		if err := waitClosed(t, c, 2500*time.Millisecond); err != nil {
			t.Fatalf("connection with an open stream closed: %v", err)
		}
		if got := string(mustRoundTrip(t, s)); got != "test/a -: x" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("known peer gets the longer timeout", func(t *testing.T) {
		c := n.Dial(t, core.NetworkQUIC, key, "test/a")
		if err := waitClosed(t, c, 2500*time.Millisecond); err != nil {
			t.Fatalf("known peer's connection closed after the anonymous timeout: %v", err)
		}
	})
}

func mustRoundTrip(t *testing.T, s core.Stream) []byte {
	t.Helper()
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestHoldKeepsConnection: a handler that holds its connection (a request
// waiting for events) is not reaped.
func TestHoldKeepsConnection(t *testing.T) {
	n := coretest.Start(t, core.Config{Limits: core.Limits{AppIdleTimeout: time.Second, DrainTimeout: time.Second}}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		release := core.Hold(c)
		defer release()
		<-c.Context().Done()
		return nil
	}})
	c := n.Dial(t, core.NetworkTCP, nil, "test/a")
	if err := waitClosed(t, c, 2500*time.Millisecond); err != nil {
		t.Fatalf("held connection closed: %v", err)
	}
}

// TestDisabledPeerRefused: a disabled key is refused with an auth line, not
// served as an anonymous peer.
func TestDisabledPeerRefused(t *testing.T) {
	key := coretest.NewKey(t)
	live := core.NewLiveDirectory(mustDir(t, []core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{coretest.NodeID(key)}, Disabled: true}}, nil), nil)
	var log coretest.Buffer
	served := make(chan struct{}, 4)
	n := coretest.Start(t, core.Config{Identities: live, Logger: slog.New(slog.NewTextHandler(&log, nil))}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		served <- struct{}{}
		return nil
	}})
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		// TLS 1.3 clients finish their handshake before the server has
		// checked their certificate: the refusal may come with the dial
		// or with the first read.
		c, err := (&core.Dialer{Key: key, Network: network}).Dial(context.Background(), n.Addr, "test/a")
		if err == nil {
			if s, serr := c.OpenStream(context.Background()); serr == nil {
				s.Write([]byte{0})
				s.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = s.Read(make([]byte, 1))
			} else {
				err = serr
			}
			if isTimeout(err) {
				t.Fatalf("%s: disabled peer's connection still open", network)
			}
			if cause := context.Cause(c.Context()); cause != nil && !core.IsKeyRefused(err) {
				err = cause
			}
			c.CloseWithError(0, "")
		}
		if !core.IsKeyRefused(err) {
			t.Errorf("%s: client saw %v, which IsKeyRefused does not recognise", network, err)
		}
	}
	select {
	case <-served:
		t.Fatal("the handler served a disabled peer")
	default:
	}
	if !strings.Contains(log.String(), "msg=auth result=reject alpn=test/a") {
		t.Errorf("no auth reject line in:\n%s", log.String())
	}
}

// TestOverLimitTCPGetsAlert: a TCP client over the per-IP limit reads a TLS
// alert it can print, not a bare reset.
func TestOverLimitTCPGetsAlert(t *testing.T) {
	n := coretest.Start(t, core.Config{Limits: core.Limits{MaxConnsPerIP: 1}}, echo{[]string{"test/a"}})
	n.Dial(t, core.NetworkTCP, nil, "test/a")
	c, err := tls.Dial("tcp", n.HostPort, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"test/a"}})
	if err == nil {
		c.Close()
		t.Fatal("second TCP connection from one IP was admitted")
	}
	if !strings.Contains(err.Error(), "access denied") {
		t.Errorf("client saw %q, want a TLS access denied alert", err)
	}
}

func TestLimitsValidateMinimums(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  core.Limits
		want string
	}{
		{"idle 1ns", core.Limits{IdleTimeout: time.Nanosecond}, "limits.idle_timeout: 1ns is below the minimum 1s"},
		{"handshake 1ms", core.Limits{HandshakeTimeout: time.Millisecond}, "limits.handshake_timeout"},
		{"frame grace 1us", core.Limits{FrameGrace: time.Microsecond}, "limits.frame_grace"},
		{"negative app idle is off", core.Limits{AppIdleTimeout: -1}, ""},
		{"negative idle", core.Limits{IdleTimeout: -time.Second}, "limits.idle_timeout: -1s is negative"},
		{"prefix 129", core.Limits{IPv6PrefixLen: 129}, "limits.ipv6_prefix_len"},
		{"defaults", core.Limits{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.lim.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// budgets hands each connection's frame budget to the test.
type budgets chan *core.Budget

func (b budgets) ALPNs() []string { return []string{"test/budget"} }

func (b budgets) Serve(ctx context.Context, c core.Conn) error {
	b <- core.FrameLimitsOf(c).Budget
	<-c.Context().Done()
	return nil
}

// TestIdentityInflightPool: the connections of one known identity share
// max_identity_inflight_bytes, so a peer that opens many connections
// cannot take the known peers' pool from another; what one of its
// connections releases, another may take.
func TestIdentityInflightPool(t *testing.T) {
	greedy, other := coretest.NewKey(t), coretest.NewKey(t)
	live := core.NewLiveDirectory(mustDir(t, []core.PeerEntry{
		{ID: "greedy", NodeIDs: []core.NodeID{coretest.NodeID(greedy)}},
		{ID: "other", NodeIDs: []core.NodeID{coretest.NodeID(other)}},
	}, nil), nil)
	const kib = 1 << 10
	got := make(budgets)
	n := coretest.Start(t, core.Config{Identities: live, Limits: core.Limits{
		MaxConnInflightBytes: 64 * kib, MaxIdentityInflightBytes: 96 * kib, MaxInflightBytes: 160 * kib,
	}}, got)
	dial := func(key []byte) *core.Budget {
		n.Dial(t, core.NetworkQUIC, key, "test/budget")
		return <-got
	}
	g1, g2, o := dial(greedy), dial(greedy), dial(other)
	steps := []struct {
		name string
		b    *core.Budget
		n    int64
		want bool
	}{
		{"greedy's first connection", g1, 60 * kib, true},
		{"greedy's second connection, past the identity's 96 KiB", g2, 60 * kib, false},
		{"greedy's second connection, within it", g2, 30 * kib, true},
		{"the other peer, as much as one connection holds", o, 60 * kib, true},
	}
	for _, s := range steps {
		if ok := s.b.TryAcquire(s.n); ok != s.want {
			t.Fatalf("%s: acquiring %d KiB: %v, want %v", s.name, s.n/kib, ok, s.want)
		}
	}
	if g2.TryAcquire(30 * kib) {
		t.Fatal("greedy's second connection took 30 KiB more past its identity's 96 KiB")
	}
	g1.Release(60 * kib)
	if !g2.TryAcquire(30 * kib) {
		t.Error("greedy's bytes released on one connection are not available to its other")
	}
}
