package core_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

func newEndpoint(t *testing.T, cfg core.Config, h ...core.Handler) *core.Endpoint {
	t.Helper()
	r, err := core.NewRouter(h...)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Router = r
	if cfg.Key == nil {
		cfg.Key = coretest.NewKey(t)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	ep, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// TestShutdownWithStuckHandlerReturns: a handler blocked on something other
// than its connection cannot hold Shutdown or Close forever.
func TestShutdownWithStuckHandlerReturns(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	entered := make(chan struct{}, 1)
	ep := newEndpoint(t, core.Config{Limits: core.Limits{DrainTimeout: 100 * time.Millisecond}},
		handlerFunc{"test/a", func(context.Context, core.Conn) error {
			entered <- struct{}{}
			<-block // ignores ctx and the connection
			return nil
		}})
	if err := ep.Listen(); err != nil {
		t.Fatal(err)
	}
	go ep.Serve(context.Background())
	c, err := (&core.Dialer{Network: core.NetworkQUIC}).Dial(context.Background(), ep.NodeID().String()+"@"+ep.Addr().String(), "test/a")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	<-entered
	start := time.Now()
	err = ep.Shutdown(context.Background())
	if err == nil {
		t.Error("shutdown reported success with a stuck handler")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("shutdown took %v", d)
	}
}

// TestCloseCutsShutdownShort: Close during a drain ends it at once.
func TestCloseCutsShutdownShort(t *testing.T) {
	entered := make(chan struct{}, 1)
	ep := newEndpoint(t, core.Config{Limits: core.Limits{DrainTimeout: time.Minute}},
		handlerFunc{"test/a", func(_ context.Context, c core.Conn) error {
			entered <- struct{}{}
			<-c.Context().Done()
			return nil
		}})
	ep.Listen()
	go ep.Serve(context.Background())
	c, err := (&core.Dialer{Network: core.NetworkQUIC}).Dial(context.Background(), ep.NodeID().String()+"@"+ep.Addr().String(), "test/a")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	<-entered
	done := make(chan error, 1)
	go func() { done <- ep.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	ep.Close()
	<-done
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("close during a drain took %v", d)
	}
}

// TestCloseBeforeServe: a closed endpoint binds nothing.
func TestCloseBeforeServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ep := newEndpoint(t, core.Config{Addr: addr}, echo{[]string{"test/a"}})
	ep.Close()
	if err := ep.Serve(context.Background()); !errors.Is(err, core.ErrEndpointClosed) {
		t.Fatalf("Serve after Close: %v", err)
	}
	again, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port stayed bound: %v", err)
	}
	again.Close()
}

// TestTCPConnContextEndsWhenPeerLeaves: on TCP the connection's context ends
// once the stream has ended both ways, so handlers waiting on it return.
func TestTCPConnContextEndsWhenPeerLeaves(t *testing.T) {
	ended := make(chan struct{})
	n := coretest.Start(t, core.Config{}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, s)
		s.CloseWrite()
		<-c.Context().Done()
		close(ended)
		return nil
	}})
	c := n.Dial(t, core.NetworkTCP, nil, "test/a")
	s, _ := c.OpenStream(context.Background())
	s.Write([]byte("x"))
	s.CloseWrite()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's connection context did not end")
	}
}

// TestSlowReaderGetsWholeAnswer: the end of an answer written just before
// the handler returns still reaches a reader that takes its time.
func TestSlowReaderGetsWholeAnswer(t *testing.T) {
	const size = 1 << 20
	n := coretest.Start(t, core.Config{}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return err
		}
		s.Write(make([]byte, size))
		return s.CloseWrite()
	}})
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			c := n.Dial(t, network, nil, "test/a")
			s, _ := c.OpenStream(context.Background())
			s.Write([]byte("go"))
			s.CloseWrite()
			time.Sleep(2500 * time.Millisecond) // longer than any fixed linger
			got, err := io.ReadAll(s)
			if len(got) != size || err != nil {
				t.Errorf("read %d bytes, err %v; want %d", len(got), err, size)
			}
		})
	}
}

// TestWebCertificate: standard ALPNs, and ALPN-less clients routed to one,
// get the web certificate and no client-certificate request; alknet ALPNs
// get the node certificate.
func TestWebCertificate(t *testing.T) {
	certFile, keyFile, _ := coretest.WebCertFiles(t, "web.example")
	web, err := core.WebCertFromFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	n := coretest.Start(t, core.Config{WebCert: web, StandardALPNs: []string{"dot", "h2"}, NoALPN: "dot"}, echo{[]string{"dot", "h2", "alknet/test"}})
	for _, tc := range []struct {
		name      string
		alpns     []string
		wantCN    string
		askedCert bool
	}{
		{"standard alpn", []string{"h2"}, "web.example", false},
		{"no alpn routed to dot", nil, "web.example", false},
		{"alknet alpn", []string{"alknet/test"}, n.ID.String(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := false
			c, err := tls.Dial("tcp", n.HostPort, &tls.Config{
				InsecureSkipVerify: true,
				NextProtos:         tc.alpns,
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					asked = true
					return &tls.Certificate{}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != tc.wantCN {
				t.Errorf("certificate CN %q, want %q", cn, tc.wantCN)
			}
			if asked != tc.askedCert {
				t.Errorf("client certificate requested: %v, want %v", asked, tc.askedCert)
			}
		})
	}
}

// shutdownHandler is a handler with work of its own to finish at shutdown.
type shutdownHandler struct {
	handlerFunc
	called  chan struct{}
	release chan struct{}
}

func (h shutdownHandler) Shutdown(ctx context.Context) error {
	close(h.called)
	select {
	case <-h.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestShutdownerRunsWithinDrain: Endpoint.Shutdown calls a handler's own
// Shutdown, waits for it while connections drain, and ends its context
// when the drain time is up.
func TestShutdownerRunsWithinDrain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release bool // the handler finishes by itself
		drain   time.Duration
	}{{"finishes", true, 10 * time.Second}, {"cut at the drain timeout", false, time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			h := shutdownHandler{
				handlerFunc: handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error { return nil }},
				called:      make(chan struct{}),
				release:     make(chan struct{}),
			}
			ep := newEndpoint(t, core.Config{Limits: core.Limits{DrainTimeout: tc.drain}}, h)
			if err := ep.Listen(); err != nil {
				t.Fatal(err)
			}
			go ep.Serve(context.Background())
			done := make(chan time.Duration, 1)
			start := time.Now()
			go func() {
				_ = ep.Shutdown(context.Background())
				done <- time.Since(start)
			}()
			select {
			case <-h.called:
			case <-time.After(5 * time.Second):
				t.Fatal("Shutdown not called")
			}
			select {
			case d := <-done:
				t.Fatalf("endpoint stopped after %v while the handler's Shutdown ran", d)
			case <-time.After(200 * time.Millisecond):
			}
			if tc.release {
				close(h.release)
			}
			d := <-done
			if tc.release && d > 5*time.Second {
				t.Errorf("stopped after %v: did not end when the handler finished", d)
			}
			if !tc.release && (d < time.Second || d > 4*time.Second) {
				t.Errorf("stopped after %v: want the 1s drain timeout", d)
			}
		})
	}
}

// TestCloseWithUnreadInputKeepsAnswer: a handler that reads only its
// request, answers and Closes its stream while the client's half-close
// (TCP: TLS close_notify and FIN) sits unread must not reset the
// connection: a reset destroys the answer's bytes the client has not read.
func TestCloseWithUnreadInputKeepsAnswer(t *testing.T) {
	const size = 4 << 20
	n := coretest.Start(t, core.Config{}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return err
		}
		req := make([]byte, 2)
		if _, err := io.ReadFull(s, req); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // the client's half-close arrives, unread
		if _, err := s.Write(make([]byte, size)); err != nil {
			return err
		}
		return s.Close() // the client's half-close is still unread
	}})
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			c := n.Dial(t, network, nil, "test/a")
			s, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s.Write([]byte("go"))
			time.Sleep(100 * time.Millisecond) // the node reads the request alone
			s.CloseWrite()
			time.Sleep(time.Second) // the node writes and closes while we do not read
			got, err := io.ReadAll(s)
			if len(got) != size || err != nil {
				t.Errorf("read %d bytes, err %v; want %d", len(got), err, size)
			}
		})
	}
}

// TestAbortAfterCleanEndKeepsAnswer: a handler that aborts its stream when
// the connection's context ends (alknet/fwd does, to stop at shutdown)
// must not reset a single-stream connection whose stream has already
// ended cleanly both ways: that end is what ended the context, and the
// reset would destroy the answer the client has not read yet.
func TestAbortAfterCleanEndKeepsAnswer(t *testing.T) {
	// Loopback socket buffers take most of it: the handler's Write returns
	// before the client reads, the rest waits in this side's send queue,
	// which a reset throws away.
	const size = 4 << 20
	aborted := make(chan struct{}, 1)
	n := coretest.Start(t, core.Config{}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return err
		}
		defer func() { aborted <- struct{}{} }()
		abortRan := make(chan struct{})
		context.AfterFunc(c.Context(), func() {
			defer close(abortRan)
			s.Abort(core.CodeShutdown)
		})
		if _, err := io.ReadAll(s); err != nil {
			return err
		}
		if _, err := s.Write(make([]byte, size)); err != nil {
			return err
		}
		if err := s.CloseWrite(); err != nil {
			return err
		}
		<-abortRan // both directions ended, which ended the context
		return nil
	}})
	{ // single-stream connections only: a QUIC connection outlives its streams
		network := core.NetworkTCP
		t.Run(string(network), func(t *testing.T) {
			c := n.Dial(t, network, nil, "test/a")
			s, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write([]byte("go")); err != nil {
				t.Fatal(err)
			}
			if err := s.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			select { // the handler's stream is done, nothing read here yet
			case <-aborted:
			case <-time.After(time.Second): // the buffers cannot hold all of it: read on, so the handler ends
			}
			got, err := io.ReadAll(s)
			if len(got) != size || err != nil {
				t.Errorf("read %d bytes, err %v; want %d", len(got), err, size)
			}
		})
	}
}
