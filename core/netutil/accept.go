package netutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Backoff bounds of [Accept]: the pause after a failed accept starts at
// minPause and doubles up to maxPause, as net/http's Server does.
const (
	minPause = 5 * time.Millisecond
	maxPause = time.Second
)

// Accept returns the next connection ln accepts. An accept error other
// than a closed listener (out of file descriptors, say) is logged at Warn
// on logger and retried after a pause growing from 5 ms to 1 s. It returns
// ctx's cause once ctx ends, or the accept error wrapping net.ErrClosed
// once ln is closed. Accept does not close ln; ctx ending does not wake an
// Accept blocked in ln (close ln for that).
func Accept(ctx context.Context, ln net.Listener, logger *slog.Logger) (net.Conn, error) {
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, fmt.Errorf("accept: %w", err)
		}
		pause = min(max(2*pause, minPause), maxPause)
		logger.Warn("accept failed", "err", err, "retry_in", pause)
		if !sleep(ctx, pause) {
			return nil, context.Cause(ctx)
		}
	}
}

// Serve accepts connections on ln with [Accept] and runs handle for each
// in its own goroutine until ctx ends or ln is closed. handle owns the
// connection and must return soon after its ctx ends. Serve then closes
// ln, waits for every handle to return, and reports why it stopped: ctx's
// cause, or the accept error wrapping net.ErrClosed. When Serve returns,
// ln is closed (not just being closed by another goroutine).
func Serve(ctx context.Context, ln net.Listener, logger *slog.Logger, handle func(context.Context, net.Conn)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A Close from another goroutine wakes Accept before the socket is
	// gone, so Serve waits for that Close to finish, or closes ln itself.
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
	for {
		c, err := Accept(ctx, ln, logger)
		if err != nil {
			return err
		}
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
