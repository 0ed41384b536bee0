package netutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestServeAndRelay relays each accepted connection to an echo server:
// the client's half-close travels through and the echo comes back; ctx
// ending stops Serve, closes the listener and ends the relays.
func TestServeAndRelay(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
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
	echo.Close()
}

func TestWhy(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Failure
	}{
		{fmt.Errorf("policy: %w", os.ErrPermission), Denied},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, Refused},
		{syscall.EHOSTUNREACH, HostUnreachable},
		{&net.DNSError{Err: "no such host", IsNotFound: true}, HostUnreachable},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), HostUnreachable},
		{syscall.ENETUNREACH, NetworkUnreachable},
		{errors.New("boom"), Other},
	} {
		if got := Why(tc.err); got != tc.want {
			t.Errorf("Why(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
