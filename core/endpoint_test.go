package core_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echo answers each stream with "<alpn> <identity>: " and the bytes it read.
type echo struct{ alpns []string }

func (h echo) ALPNs() []string { return h.alpns }

func (h echo) Serve(ctx context.Context, c core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		wg.Go(func() {
			defer s.Close()
			data, err := io.ReadAll(s)
			if err != nil {
				return
			}
			fmt.Fprintf(s, "%s %s: %s", c.ALPN(), c.Peer().Identity, data)
			_ = s.CloseWrite()
		})
	}
}

// roundTrip sends msg on a new stream, half-closes and returns the answer.
func roundTrip(t *testing.T, c core.Conn, msg string) string {
	t.Helper()
	return roundTripOn(t, c.OpenStream, msg)
}

// roundTripOn is roundTrip on a stream that open opens.
func roundTripOn(t *testing.T, open func(context.Context) (core.Stream, error), msg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := open(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(s, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatalf("close write: %v", err)
	}
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(got)
}

var networks = []core.Network{core.NetworkQUIC, core.NetworkTCP}

func TestDispatchByALPN(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}}, echo{[]string{"test/b", "test/c"}})
	for _, network := range networks {
		for _, alpn := range []string{"test/a", "test/b", "test/c"} {
			t.Run(string(network)+"/"+alpn, func(t *testing.T) {
				c := n.Dial(t, network, nil, alpn)
				if got, want := roundTrip(t, c, "hello"), alpn+" -: hello"; got != want {
					t.Errorf("got %q, want %q", got, want)
				}
			})
		}
	}
}

func TestQUICManyStreams(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	c := n.Dial(t, core.NetworkQUIC, nil, "test/a")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			msg := fmt.Sprintf("stream %d", i)
			if got := roundTrip(t, c, msg); got != "test/a -: "+msg {
				t.Errorf("got %q", got)
			}
		})
	}
	wg.Wait()
}

func TestUnknownALPNRefused(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			d := &core.Dialer{Network: network}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := d.Dial(ctx, n.Addr, "test/unknown")
			if err == nil {
				c.CloseWithError(0, "")
				t.Fatal("dial with an unserved ALPN succeeded")
			}
			if !strings.Contains(err.Error(), "no application protocol") && !strings.Contains(err.Error(), "0x178") {
				t.Errorf("error %q does not name the ALPN failure", err)
			}
		})
	}
}

func TestTCPWithoutALPNClosed(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	tc, err := tls.Dial("tcp", n.HostPort, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := tc.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded on a connection without ALPN")
	} else if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
		t.Fatal("connection without ALPN was not closed")
	}
}

func TestNoALPNRoute(t *testing.T) {
	n := coretest.Start(t, core.Config{NoALPN: "test/a"}, echo{[]string{"test/a"}})
	tc, err := tls.Dial("tcp", n.HostPort, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(tc, "x")
	tc.CloseWrite()
	got, _ := io.ReadAll(tc)
	if string(got) != "test/a -: x" {
		t.Errorf("got %q", got)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestDuplicateALPN(t *testing.T) {
	_, err := core.NewRouter(echo{[]string{"test/a"}}, echo{[]string{"test/b", "test/a"}})
	if !errors.Is(err, core.ErrDuplicateALPN) {
		t.Fatalf("got %v, want ErrDuplicateALPN", err)
	}
	if _, err := core.NewRouter(echo{nil}); err == nil {
		t.Error("a handler without ALPN was accepted")
	}
	for _, bad := range []string{"bad alpn", "", strings.Repeat("a", 256), "caf\u00e9", "tab\there", "del\x7f"} {
		if _, err := core.NewRouter(echo{[]string{bad}}); err == nil {
			t.Errorf("ALPN %q was accepted", bad)
		}
	}
	if _, err := core.NewRouter(echo{[]string{strings.Repeat("~", 255)}}); err != nil {
		t.Errorf("a 255-byte printable ALPN was refused: %v", err)
	}
}

func TestPinning(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	other := coretest.NodeID(coretest.NewKey(t))
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			d := &core.Dialer{Network: network}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := d.Dial(ctx, n.Addr, "test/a")
			if err != nil {
				t.Fatalf("pinned dial: %v", err)
			}
			if c.Peer().NodeID != n.ID {
				t.Errorf("peer %v, want %v", c.Peer().NodeID, n.ID)
			}
			c.CloseWithError(0, "")
			_, err = d.Dial(ctx, other.String()+"@"+n.HostPort, "test/a")
			var pm *core.PinMismatchError
			if !errors.As(err, &pm) {
				t.Fatalf("dial with wrong pin: %v, want PinMismatchError", err)
			}
			if pm.Got != n.ID || pm.Want != other {
				t.Errorf("mismatch error %+v", pm)
			}
		})
	}
}

// TestPinFailsBeforeApplicationBytes checks that a handler never runs for a
// client that refused the node's key.
func TestPinFailsBeforeApplicationBytes(t *testing.T) {
	served := make(chan struct{}, 4)
	n := coretest.Start(t, core.Config{}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		served <- struct{}{}
		return nil
	}})
	other := coretest.NodeID(coretest.NewKey(t))
	for _, network := range networks {
		d := &core.Dialer{Network: network}
		if _, err := d.Dial(context.Background(), other.String()+"@"+n.HostPort, "test/a"); err == nil {
			t.Fatal("dial with wrong pin succeeded")
		}
	}
	// A correct dial afterwards reaches the handler; the failed ones did not.
	c := n.Dial(t, core.NetworkTCP, nil, "test/a")
	<-served
	select {
	case <-served:
		t.Fatal("handler ran for a connection whose pin failed")
	case <-time.After(200 * time.Millisecond):
	}
	_ = c
}

type handlerFunc struct {
	alpn string
	fn   func(context.Context, core.Conn) error
}

func (h handlerFunc) ALPNs() []string                              { return []string{h.alpn} }
func (h handlerFunc) Serve(ctx context.Context, c core.Conn) error { return h.fn(ctx, c) }

func TestTrustOnFirstUse(t *testing.T) {
	known := core.NewKnownNodes(t.TempDir() + "/known_nodes")
	var added []string // what Added was told, once per new entry
	known.Added = func(addr string, id core.NodeID) { added = append(added, addr+" "+id.String()) }
	n1 := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	d := &core.Dialer{KnownNodes: known, Network: core.NetworkQUIC}
	ctx := context.Background()
	c, err := d.Dial(ctx, n1.HostPort, "test/a")
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	c.CloseWithError(0, "")
	if c, err = d.Dial(ctx, n1.HostPort, "test/a"); err != nil {
		t.Fatalf("second dial: %v", err)
	}
	c.CloseWithError(0, "")
	if want := []string{n1.HostPort + " " + n1.ID.String()}; !slices.Equal(added, want) {
		t.Errorf("Added was told %q after two dials, want %q", added, want)
	}
	// The same address now answers with another key.
	if err := known.Record(n1.HostPort, coretest.NodeID(coretest.NewKey(t))); err == nil {
		t.Fatal("Record replaced a known key")
	}
	n2 := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	if err := known.Record(n2.HostPort, coretest.NodeID(coretest.NewKey(t))); err != nil {
		t.Fatal(err)
	}
	_, err = d.Dial(ctx, n2.HostPort, "test/a")
	var km *core.KeyMismatchError
	if !errors.As(err, &km) {
		t.Fatalf("dial to a changed key: %v, want KeyMismatchError", err)
	}
	if !strings.Contains(err.Error(), "delete that line") || km.Got != n2.ID {
		t.Errorf("error %q does not say how to fix it", err)
	}
	if len(added) != 2 {
		t.Errorf("Added was told %q, want the first dial's entry and n2's record only", added)
	}
	if _, err := (&core.Dialer{}).Dial(ctx, n1.HostPort, "test/a"); err == nil {
		t.Error("unpinned dial without known nodes succeeded")
	}
}

func TestClientIdentity(t *testing.T) {
	known := coretest.NewKey(t)
	unknown := coretest.NewKey(t)
	dir, err := core.NewDirectory([]core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{coretest.NodeID(known)}, Scopes: []string{"perf"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	peers := make(chan core.Peer, 1)
	n := coretest.Start(t, core.Config{Identities: core.NewLiveDirectory(dir, nil)}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		peers <- c.Peer()
		return nil
	}})
	for _, network := range networks {
		for _, tc := range []struct {
			name   string
			key    []byte
			wantID string
		}{
			{"known key", known, "laptop"},
			{"unknown key", unknown, ""},
			{"anonymous", nil, ""},
		} {
			t.Run(string(network)+"/"+tc.name, func(t *testing.T) {
				n.Dial(t, network, tc.key, "test/a")
				p := <-peers
				if got := p.Identity.String(); (tc.wantID == "" && p.Identity != nil) || (tc.wantID != "" && got != tc.wantID) {
					t.Errorf("identity %s, want %q", got, tc.wantID)
				}
				if tc.key != nil && p.NodeID != coretest.NodeID(tc.key) {
					t.Errorf("node %v, want the client's key", p.NodeID)
				}
				if tc.key == nil && !p.NodeID.IsZero() {
					t.Errorf("anonymous client has node %v", p.NodeID)
				}
				if p.Identity != nil && !p.Identity.HasScope("perf") {
					t.Errorf("scopes %v lack perf", p.Identity.Scopes)
				}
			})
		}
	}
}

func TestRevocationClosesLiveConnection(t *testing.T) {
	key := coretest.NewKey(t)
	peer := core.PeerEntry{ID: "laptop", NodeIDs: []core.NodeID{coretest.NodeID(key)}}
	dir, _ := core.NewDirectory([]core.PeerEntry{peer}, nil)
	token, hash, _ := core.NewToken()
	live := core.NewLiveDirectory(dir, nil)
	n := coretest.Start(t, core.Config{Identities: live}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		// A token presented in-band is bound to the connection.
		if c.Peer().Identity == nil {
			id, ok := live.ByToken(token)
			if !ok {
				return c.CloseWithError(core.CodeForbidden, "bad token")
			}
			c.(core.IdentityBinder).BindIdentity(id)
		}
		<-c.Context().Done()
		return nil
	}})
	for _, tc := range []struct {
		name    string
		key     []byte
		network core.Network
		revoke  *core.Directory
	}{
		{"peer disabled/quic", key, core.NetworkQUIC, mustDir(t, []core.PeerEntry{{ID: "laptop", NodeIDs: peer.NodeIDs, Disabled: true}}, nil)},
		{"peer removed/tcp", key, core.NetworkTCP, mustDir(t, nil, nil)},
		{"token disabled/quic", nil, core.NetworkQUIC, mustDir(t, []core.PeerEntry{peer}, []core.TokenEntry{{Name: "ci", Hash: hash, Disabled: true}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			live.Store(mustDir(t, []core.PeerEntry{peer}, []core.TokenEntry{{Name: "ci", Hash: hash}}))
			c := n.Dial(t, tc.network, tc.key, "test/a")
			s, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s.Write([]byte{0})                 // the server sees the stream only once it carries data
			time.Sleep(100 * time.Millisecond) // let the handler bind
			live.Store(tc.revoke)
			start := time.Now()
			n.Endpoint.Revalidate()
			// The client learns of the close by reading: EOF or an error.
			s.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := s.Read(make([]byte, 1)); isTimeout(err) {
				t.Fatal("revoked connection still open after 1s")
			}
			t.Logf("closed after %v", time.Since(start))
		})
	}
}

func mustDir(t *testing.T, p []core.PeerEntry, tok []core.TokenEntry) *core.Directory {
	t.Helper()
	d, err := core.NewDirectory(p, tok)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestShutdownDrainsInFlightStream(t *testing.T) {
	release := make(chan struct{})
	key := coretest.NewKey(t)
	r, _ := core.NewRouter(handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			t.Logf("accept: %v", err)
			return nil
		}
		defer s.Close()
		<-release // the stream is in flight when shutdown starts
		_, err = io.WriteString(s, "finished")
		s.CloseWrite()
		return err
	}})
	ep, err := core.New(core.Config{Addr: "127.0.0.1:0", Key: key, Router: r, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve(context.Background()) }()
	addr := ep.NodeID().String() + "@" + ep.Addr().String()
	c, err := (&core.Dialer{Network: core.NetworkQUIC}).Dial(context.Background(), addr, "test/a")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	s, _ := c.OpenStream(context.Background())
	s.Write([]byte("go"))
	time.Sleep(100 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- ep.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned %v before the in-flight stream finished", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	got, err := io.ReadAll(s)
	if err != nil {
		t.Errorf("read in-flight stream: %v", err)
	}
	if string(got) != "finished" {
		t.Errorf("in-flight stream got %q, want %q", got, "finished")
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, core.ErrEndpointClosed) {
		t.Errorf("serve: %v", err)
	}
}

func TestShutdownDrainTimeoutClosesRest(t *testing.T) {
	r, _ := core.NewRouter(handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		<-c.Context().Done() // ignores ctx: only closing the connection stops it
		return nil
	}})
	ep, _ := core.New(core.Config{Addr: "127.0.0.1:0", Key: coretest.NewKey(t), Router: r,
		Limits: core.Limits{DrainTimeout: 200 * time.Millisecond}, Logger: slog.New(slog.DiscardHandler)})
	ep.Listen()
	go ep.Serve(context.Background())
	c, err := (&core.Dialer{Network: core.NetworkQUIC}).Dial(context.Background(), ep.NodeID().String()+"@"+ep.Addr().String(), "test/a")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := ep.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
	<-c.Context().Done()
	var ae *quic.ApplicationError
	if err := context.Cause(c.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(core.CodeShutdown) {
		t.Errorf("client saw %v, want application error %v", err, core.CodeShutdown)
	}
}

func TestPanickingHandlerContained(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	n := coretest.Start(t, core.Config{Logger: logger},
		handlerFunc{"test/panic", func(context.Context, core.Conn) error { panic("boom") }},
		echo{[]string{"test/a"}})
	for _, network := range networks {
		c := n.Dial(t, network, nil, "test/panic")
		if network == core.NetworkTCP {
			s, _ := c.OpenStream(context.Background())
			s.Write([]byte{0})
		}
		select {
		case <-c.Context().Done():
		case <-time.After(5 * time.Second):
			if network == core.NetworkQUIC {
				t.Fatal("connection of a panicking handler not closed")
			}
		}
		if network == core.NetworkQUIC {
			var ae *quic.ApplicationError
			if err := context.Cause(c.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(core.CodeInternal) {
				t.Errorf("client saw %v, want %v", err, core.CodeInternal)
			}
		}
		// The endpoint still serves.
		if got := roundTrip(t, n.Dial(t, network, nil, "test/a"), "ok"); got != "test/a -: ok" {
			t.Errorf("after panic: %q", got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "handler panicked") || !strings.Contains(logs.String(), "boom") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestPerIPLimit(t *testing.T) {
	n := coretest.Start(t, core.Config{Limits: core.Limits{MaxConnsPerIP: 2}}, echo{[]string{"test/a"}})
	n.Dial(t, core.NetworkQUIC, nil, "test/a")
	n.Dial(t, core.NetworkQUIC, nil, "test/a")
	c, err := (&core.Dialer{Network: core.NetworkQUIC}).Dial(context.Background(), n.Addr, "test/a")
	if err == nil {
		// Refused after the handshake: the connection is closed at once.
		select {
		case <-c.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("third connection from one IP was not refused")
		}
	}
}

// TestDialFallsBackToTCP dials a node reachable only over TCP+TLS (UDP
// blocked): the dialer gives up on QUIC and connects over TCP.
func TestDialFallsBackToTCP(t *testing.T) {
	key := coretest.NewKey(t)
	cert, err := core.NodeCertificate(key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"test/a"}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "over tcp")
	}()
	// Hold the UDP port so nothing answers QUIC there.
	udp, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Skipf("udp port busy: %v", err)
	}
	defer udp.Close()
	d := &core.Dialer{QUICTimeout: 300 * time.Millisecond}
	c, err := d.Dial(context.Background(), coretest.NodeID(key).String()+"@"+ln.Addr().String(), "test/a")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.CloseWithError(0, "")
	if _, ok := c.(core.QUICConn); ok {
		t.Fatal("got a QUIC connection from a TCP-only node")
	}
	s, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(s)
	if string(got) != "over tcp" {
		t.Errorf("got %q", got)
	}
}

// TestDialByNodeID checks that a bare NodeID dials through Resolve, trying
// each candidate pinned to that NodeID: a dead address is skipped, and a
// live node with another key is refused.
func TestDialByNodeID(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	impostor := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}})
	var asked core.NodeID
	d := &core.Dialer{Network: core.NetworkQUIC, QUICTimeout: time.Second, Resolve: func(_ context.Context, id core.NodeID) ([]core.Route, error) {
		asked = id
		return []core.Route{{Addr: "127.0.0.1:1"}, {Addr: impostor.HostPort}, {Addr: n.HostPort}}, nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, n.ID.String(), "test/a")
	if err != nil {
		t.Fatalf("dial by NodeID: %v", err)
	}
	defer c.CloseWithError(0, "")
	if asked != n.ID || c.Peer().NodeID != n.ID {
		t.Errorf("resolved %v, connected to %v; want %v", asked, c.Peer().NodeID, n.ID)
	}
	d.Resolve = func(context.Context, core.NodeID) ([]core.Route, error) {
		return []core.Route{{Addr: impostor.HostPort}}, nil
	}
	var pm *core.PinMismatchError
	if _, err := d.Dial(ctx, n.ID.String(), "test/a"); !errors.As(err, &pm) {
		t.Errorf("only an impostor: %v, want a PinMismatchError", err)
	}
	if _, err := (&core.Dialer{}).Dial(ctx, n.ID.String(), "test/a"); err == nil {
		t.Error("a bare NodeID without Resolve dialled")
	}
}

// TestPeerStoppedAfterCleanClose: a handler that answers and closes its
// stream without reading the rest makes the client's later CloseWrite fail
// with an error PeerStopped recognises — a finished exchange, not a failure.
func TestPeerStoppedAfterCleanClose(t *testing.T) {
	n := coretest.Start(t, core.Config{}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		_, _ = io.WriteString(s, "bye")
		_ = s.Close()
		<-c.Context().Done()
		return nil
	}})
	c := n.Dial(t, core.NetworkQUIC, nil, "test/a")
	s, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(s, "hello"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "bye" {
		t.Fatalf("read %q, %v", got, err)
	}
	// The STOP_SENDING travels with or just after the FIN.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = s.Write([]byte("more"))
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !core.PeerStopped(err) {
		t.Fatalf("write after the peer's close: %v, want PeerStopped", err)
	}
	if err := s.CloseWrite(); !core.PeerStopped(err) {
		t.Fatalf("CloseWrite after the peer's close: %v, want PeerStopped", err)
	}
	if core.PeerStopped(errors.New("other")) {
		t.Fatal("PeerStopped of an unrelated error")
	}
}

// TestCloseErrorOnBothTransports: a handler's close code reaches the
// client as a *core.CloseError cause on QUIC (the peer's code, Remote), and
// this side's own close is a CloseError on both transports; MultiStream
// tells the transports apart.
func TestCloseErrorOnBothTransports(t *testing.T) {
	n := coretest.Start(t, core.Config{}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		s, err := c.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		_, _ = io.ReadAll(s)
		return c.CloseWithError(core.CodeRevoked, "bye")
	}})
	for _, network := range networks {
		t.Run(string(network), func(t *testing.T) {
			c := n.Dial(t, network, nil, "test/a")
			if got, want := c.MultiStream(), network == core.NetworkQUIC; got != want {
				t.Errorf("MultiStream() = %v, want %v", got, want)
			}
			s, err := c.OpenStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_ = s.CloseWrite()
			_, _ = io.ReadAll(s)
			if network == core.NetworkQUIC {
				select {
				case <-c.Context().Done():
				case <-time.After(5 * time.Second):
					t.Fatal("connection still open after the handler closed it")
				}
				ce, ok := core.AsCloseError(context.Cause(c.Context()))
				if !ok || !ce.Remote || ce.Code != core.CodeRevoked || ce.Reason != "bye" {
					t.Fatalf("cause %v: want the peer's CloseError revoked: bye", context.Cause(c.Context()))
				}
				if !errors.Is(ce, net.ErrClosed) {
					t.Error("CloseError does not match net.ErrClosed")
				}
				var ae *quic.ApplicationError
				if !errors.As(ce, &ae) {
					t.Error("CloseError lost QUIC's error")
				}
			}
			// This side's close is a CloseError on both transports (TCP
			// cannot carry the peer's code).
			c = n.Dial(t, network, nil, "test/a")
			_ = c.CloseWithError(core.CodeShutdown, "")
			ce, ok := core.AsCloseError(context.Cause(c.Context()))
			if !ok || ce.Remote || ce.Code != core.CodeShutdown {
				t.Fatalf("cause %v: want this side's CloseError shutdown", context.Cause(c.Context()))
			}
		})
	}
}

func TestConnsByALPN(t *testing.T) {
	n := coretest.Start(t, core.Config{}, echo{[]string{"test/a"}}, echo{[]string{"test/b"}})
	if got := n.Endpoint.ConnsByALPN(); len(got) != 0 {
		t.Fatalf("before any connection: %v", got)
	}
	n.Dial(t, core.NetworkQUIC, nil, "test/a")
	n.Dial(t, core.NetworkTCP, nil, "test/a")
	n.Dial(t, core.NetworkQUIC, nil, "test/b")
	want := map[string]int{"test/a": 2, "test/b": 1}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := n.Endpoint.ConnsByALPN()
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ConnsByALPN = %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKnownPeerReceiveQueue: a known peer's QUIC connection queues as many
// received packets as a client's (quic-go patch 7), so a fast upload is not
// dropped inside quic-go when the run loop falls behind; an unknown or
// anonymous peer's keeps the smaller bound.
func TestKnownPeerReceiveQueue(t *testing.T) {
	known := coretest.NewKey(t)
	dir, err := core.NewDirectory([]core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{coretest.NodeID(known)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	limits := make(chan int64, 1)
	n := coretest.Start(t, core.Config{Identities: core.NewLiveDirectory(dir, nil)}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		q := c.(core.QUICConn).QUIC()
		limits <- reflect.ValueOf(q).Elem().FieldByName("receivedPackets").FieldByName("limit").Int()
		return nil
	}})
	for _, tc := range []struct {
		name string
		key  []byte
		want int64
	}{
		{"known key", known, 1024},
		{"unknown key", coretest.NewKey(t), 256},
		{"anonymous", nil, 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n.Dial(t, core.NetworkQUIC, tc.key, "test/a")
			if got := <-limits; got != tc.want {
				t.Errorf("receive queue of %d packets, want %d", got, tc.want)
			}
		})
	}
}

// TestAcceptedQUICConnForgetsCertificate: a node reads the client's key
// from its certificate once, when it accepts the connection; the parsed
// certificate (~2.5 KiB) is not kept for the connection's life.
func TestAcceptedQUICConnForgetsCertificate(t *testing.T) {
	type seen struct {
		certs int
		node  core.NodeID
	}
	got := make(chan seen, 1)
	n := coretest.Start(t, core.Config{}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
		q := c.(core.QUICConn).QUIC()
		got <- seen{len(q.ConnectionState().TLS.PeerCertificates), c.Peer().NodeID}
		return nil
	}})
	key := coretest.NewKey(t)
	n.Dial(t, core.NetworkQUIC, key, "test/a")
	s := <-got
	if s.certs != 0 {
		t.Errorf("the accepted connection keeps %d peer certificates", s.certs)
	}
	if s.node != coretest.NodeID(key) {
		t.Errorf("node %v, want the client's key", s.node)
	}
}
