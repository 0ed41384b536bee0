package netutil

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen returns a loopback TCP listener closed at the test's end.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// echoServer accepts connections and echoes each until its peer's end.
func echoServer(t *testing.T) net.Listener {
	t.Helper()
	echo := listen(t)
	done := make(chan struct{})
	t.Cleanup(func() { echo.Close(); <-done })
	go func() {
		defer close(done)
		_ = Serve(context.Background(), echo, slog.Default(), func(_ context.Context, c net.Conn) {
			defer c.Close()
			_, _ = io.Copy(c, c)
		})
	}()
	return echo
}

// TestServeAndRelay relays each accepted connection to an echo server:
// the client's half-close travels through and the echo comes back; ctx
// ending stops Serve, closes the listener and ends the relays.
func TestServeAndRelay(t *testing.T) {
	echo := echoServer(t)
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, slog.Default(), func(ctx context.Context, c net.Conn) {
			target, err := net.Dial("tcp", echo.Addr().String())
			if err != nil {
				c.Close()
				return
			}
			Relay(ctx, c, target)
		})
	}()

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(c); err != nil || string(got) != "ping" {
		t.Fatalf("relayed echo: %q, %v", got, err)
	}

	// A relay still open when ctx ends is closed.
	open, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(open, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve returned %v", err)
	}
	_ = open.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := open.Read(buf); err == nil {
		t.Error("relay still open after Serve returned")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still open after Serve returned")
	}
}

// TestServeStopsOnClose: a listener closed under Serve ends it with an
// error wrapping net.ErrClosed, after the handlers returned.
func TestServeStopsOnClose(t *testing.T) {
	ln := listen(t)
	started := make(chan struct{})
	handled := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Serve(context.Background(), ln, slog.Default(), func(ctx context.Context, c net.Conn) {
			defer close(handled)
			defer c.Close()
			close(started)
			_, _ = io.Copy(io.Discard, c) // until the client closes
		})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	<-started
	ln.Close()
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a handler still running", err)
	case <-time.After(100 * time.Millisecond):
	}
	c.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve returned %v, want net.ErrClosed", err)
	}
	select {
	case <-handled:
	default:
		t.Fatal("Serve returned before its handler")
	}
}

// failingListener is a real loopback listener whose first Accepts fail as
// an exhausted file table would.
type failingListener struct {
	net.Listener
	fails int
}

func (l *failingListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: errors.New("too many open files")}
	}
	return l.Listener.Accept()
}

// TestAcceptBacksOff: failed accepts are retried after pauses of 5, 10,
// 20 ms, then the connection comes; ctx ending cuts a pause short.
func TestAcceptBacksOff(t *testing.T) {
	ln := &failingListener{Listener: listen(t), fails: 3}
	dialed := make(chan net.Conn, 1)
	go func() {
		c, _ := net.Dial("tcp", ln.Addr().String())
		dialed <- c
	}()
	t.Cleanup(func() {
		if c := <-dialed; c != nil {
			c.Close()
		}
	})
	start := time.Now()
	c, err := Accept(context.Background(), ln, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if d := time.Since(start); d < 35*time.Millisecond {
		t.Errorf("3 failed accepts retried after %v, want >= 35ms of backoff", d)
	}

	ln.fails = 1 << 20
	ctx, cancel := context.WithCancelCause(context.Background())
	why := errors.New("stop")
	time.AfterFunc(50*time.Millisecond, func() { cancel(why) })
	if _, err := Accept(ctx, ln, slog.Default()); !errors.Is(err, why) {
		t.Fatalf("Accept after ctx ended returned %v, want its cause", err)
	}
}
