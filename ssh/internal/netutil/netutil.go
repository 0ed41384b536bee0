// Package netutil holds the connection plumbing the ssh client, its
// forwards and the SOCKS5 server share: an accept loop, a relay, and the
// reading of why a dial failed.
package netutil

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Failure says why a connection could not be made, in the terms SSH open
// failures and SOCKS replies share.
type Failure int

// Failures, from [Why].
const (
	Other Failure = iota
	Denied
	Refused
	HostUnreachable
	NetworkUnreachable
)

// Why reads a dial error: os.ErrPermission is Denied; ECONNREFUSED is
// Refused; EHOSTUNREACH, a failed name lookup and a timeout are
// HostUnreachable; ENETUNREACH is NetworkUnreachable.
func Why(err error) Failure {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, os.ErrPermission):
		return Denied
	case errors.Is(err, syscall.ECONNREFUSED):
		return Refused
	case errors.Is(err, syscall.ENETUNREACH):
		return NetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.As(err, &dnsErr),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return HostUnreachable
	}
	return Other
}

// Serve accepts connections on ln and runs handle for each in its own
// goroutine until ctx ends or ln is closed. handle owns the connection and
// must return soon after ctx ends. Serve then closes ln, waits for every
// handle to return, and reports why it stopped: ctx's cause, or the accept
// error wrapping net.ErrClosed. Other accept errors (out of file
// descriptors, say) are logged and retried after a pause growing from 5 ms
// to 1 s.
func Serve(ctx context.Context, ln net.Listener, logger *slog.Logger, handle func(context.Context, net.Conn)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// ln is closed when Serve returns, not just being closed: a Close from
	// another goroutine wakes Accept before the socket is gone, so Serve
	// waits for that Close to finish, or closes ln itself.
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		_ = ln.Close()
	})
	defer func() {
		if stop() {
			_ = ln.Close()
		} else {
			<-closed
		}
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept: %w", err)
			}
			logger.Warn("accept failed", "err", err)
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			if !sleep(ctx, pause) {
				return context.Cause(ctx)
			}
			continue
		}
		pause = 0
		wg.Go(func() { handle(ctx, c) })
	}
}

// sleep waits d, reporting false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Relay copies between a and b until both directions ended, passing each
// clean end on as a half-close (CloseWrite) where the other side has one,
// then closes both. A failed direction closes both at once, and so does ctx
// ending.
func Relay(ctx context.Context, a, b net.Conn) {
	stop := context.AfterFunc(ctx, func() {
		_ = a.Close()
		_ = b.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(a, b) })
	copyHalf(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}

// copyHalf copies src to dst. At src's clean end it half-closes dst, or
// closes it when it cannot; on an error it closes both.
func copyHalf(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			return
		}
		_ = dst.Close()
		return
	}
	_ = dst.Close()
	_ = src.Close()
}
