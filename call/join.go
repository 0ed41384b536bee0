package call

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Reconnection backoff of Join.
const (
	joinMinBackoff = time.Second
	joinMaxBackoff = 60 * time.Second
)

// Join keeps this node connected to a head as a worker: it dials addr,
// serves opts.Registry to the head on that connection, and when the
// connection ends dials again after a backoff that starts at 1 s and
// doubles to 60 s (reset by a connection that lasted). The head attaches
// the worker under its identity ID, so a reconnected worker is re-attached
// with the same PeerID. Join returns when ctx ends.
func Join(ctx context.Context, addr string, opts Options) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if opts.Dialer == nil {
		return errors.New("call: Join needs a core.Dialer")
	}
	backoff := joinMinBackoff
	for {
		start := time.Now()
		c, err := Dial(ctx, addr, opts)
		if err == nil {
			logger.Info("call: joined head", "node", c.Peer().NodeID.ShortString())
			select {
			case <-c.Done():
				logger.Warn("call: connection to head lost")
			case <-ctx.Done():
				c.Close()
				return nil
			}
			if time.Since(start) > joinMaxBackoff {
				backoff = joinMinBackoff
			}
		} else if ctx.Err() == nil {
			logger.Warn("call: cannot reach head", "err", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, joinMaxBackoff)
	}
}
