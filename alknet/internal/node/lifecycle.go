package node

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"

	"github.com/alkdev/alknet/core"
)

// part is what a service builder makes: its handler and what the node's run
// sequence owns for it. A builder opens no socket and starts nothing.
type part struct {
	handler core.Handler
	// closers release the builder's resources (stores, inboxes), after
	// every handler drained and every task ended.
	closers []func() error
	// listeners open the builder's own sockets (a plain TCP listener, say)
	// in the run phase; each returns what serves the socket until the stop
	// signal, and what closes it.
	listeners []func() (serve func(context.Context) error, closeFn func() error, err error)
	// tasks run beside the endpoint until its handlers drained.
	tasks []func(context.Context) error
	// reload, if set, applies the dynamic settings of a new config that
	// passed validation.
	reload func(next *Config)
}

// lifecycle is the run sequence of a node's parts. Start: build every part
// (a failure closes what was built), listen, start the servers and tasks.
// Stop: the endpoint stops accepting and drains its handlers; then the
// tasks end; then the resources close in reverse order of creation.
type lifecycle struct {
	logger    *slog.Logger
	closers   []func() error // in order of creation
	listeners []func() (func(context.Context) error, func() error, error)
	tasks     []func(context.Context) error
	servers   []func(context.Context) error // set by listen
	reloads   []func(*Config)

	wg sync.WaitGroup
}

// add takes over what p must run and close.
func (l *lifecycle) add(p part) {
	l.closers = append(l.closers, p.closers...)
	l.listeners = append(l.listeners, p.listeners...)
	l.tasks = append(l.tasks, p.tasks...)
	if p.reload != nil {
		l.reloads = append(l.reloads, p.reload)
	}
}

// reload hands next to every part's reload.
func (l *lifecycle) reload(next *Config) {
	for _, f := range l.reloads {
		f(next)
	}
}

// onClose registers a resource to close at the end, before the ones
// registered earlier (reverse order of creation).
func (l *lifecycle) onClose(f func() error) { l.closers = append(l.closers, f) }

// listen opens the parts' own sockets. On an error the sockets opened so
// far are registered to close with the rest; the caller calls close.
func (l *lifecycle) listen() error {
	for _, open := range l.listeners {
		serve, closeFn, err := open()
		if err != nil {
			return err
		}
		l.onClose(func() error {
			if err := closeFn(); err != nil && !errors.Is(err, net.ErrClosed) {
				return err
			}
			return nil
		})
		l.servers = append(l.servers, serve)
	}
	return nil
}

// start runs the servers until stop ends and the tasks until tasks ends.
func (l *lifecycle) start(stop, tasks context.Context) {
	run := func(ctx context.Context, f func(context.Context) error) {
		l.wg.Go(func() {
			if err := f(ctx); err != nil && ctx.Err() == nil {
				l.logger.Error("service task stopped", "err", err)
			}
		})
	}
	for _, s := range l.servers {
		run(stop, s)
	}
	for _, t := range l.tasks {
		run(tasks, t)
	}
}

// wait waits for every server and task started; their contexts must have
// ended.
func (l *lifecycle) wait() { l.wg.Wait() }

// close closes every resource, the last created first, and reports every
// failure.
func (l *lifecycle) close() error {
	var errs []error
	for _, f := range slices.Backward(l.closers) {
		if err := f(); err != nil {
			errs = append(errs, err)
		}
	}
	l.closers = nil
	return errors.Join(errs...)
}
