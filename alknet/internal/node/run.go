package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
	alkhttp "github.com/alkdev/alknet/http"
)

// Options is what [Run] needs besides the config: what the command line
// and the vault give.
type Options struct {
	// Config is the config as loaded at start ([LoadConfig]); required.
	Config *Config
	// ConfigPath is the file Config came from, re-read on SIGHUP and on
	// change.
	ConfigPath string
	// DataDir holds the services' default stores.
	DataDir string
	// Keys are the node's keys; Keys.Node is required.
	Keys Keys
	// Listen, when set, overrides node.listen.
	Listen string
	// Join, when set, is the head ([NODEID@]HOST:PORT) this node stays
	// attached to as a worker, checked against KnownNodes.
	Join       string
	KnownNodes *core.KnownNodes
	// Version is this build's version, published in call/info, sys/info
	// and the DNS self-description.
	Version string
	// Logger receives the node's records; required.
	Logger *slog.Logger
	// Ready, if set, is called with the address the endpoint listens on,
	// once every socket is open and before the node serves.
	Ready func(addr string)
}

// Run runs the node until ctx ends, then stops it gracefully: build every
// enabled service (a failure closes what was built), listen, start the
// tasks and the config reloader, serve. On stop: the endpoint stops
// accepting and drains its handlers (within [limits] drain_timeout), then
// the tasks end, then the resources close in reverse order of creation.
// A graceful stop returns nil.
func Run(ctx context.Context, o Options) error {
	cfg, logger := o.Config, o.Logger
	// stop ends the reloader and the join too when Serve fails by itself.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	if soft, hard, err := core.RaiseFileLimit(); err != nil {
		logger.Warn("file descriptor limit", "soft", soft, "hard", hard, "err", err)
	} else {
		logger.Info("file descriptor limit", "soft", soft, "hard", hard)
	}
	directory, err := cfg.Directory()
	if err != nil {
		return fmt.Errorf("%s: %w", o.ConfigPath, err)
	}
	identities := core.NewLiveDirectory(directory, nil)
	on, err := enabled(cfg.Services.Disable)
	if err != nil {
		return fmt.Errorf("%s: %w", o.ConfigPath, err)
	}
	// One node per data dir: its control socket answers while it runs.
	controlPath := ""
	if o.DataDir != "" {
		controlPath = ControlPath(o.DataDir)
		if len(controlPath) >= maxSocketPath {
			logger.Warn("control socket: the data dir's path is too long for a unix socket; commands beside this node cannot reach it",
				"path", controlPath, "max", maxSocketPath-1)
			controlPath = ""
		} else if err := checkControl(controlPath); err != nil {
			return err
		}
	}
	// The status keeps the auth rejects every service logs.
	rejects := &rejectRing{}
	logger = slog.New(&rejectTap{Handler: logger.Handler(), ring: rejects})
	n := &node{
		logger:     logger,
		key:        o.Keys.Node,
		msgKey:     o.Keys.Msg,
		mixSeed:    o.Keys.MixSeed,
		id:         ID(o.Keys.Node),
		dataDir:    o.DataDir,
		cfg:        cfg,
		identities: identities,
		calls:      call.NewRegistry(),
		peers:      call.NewPeers(call.First, logger),
		version:    o.Version,
	}
	if o.Join != "" && !cfg.Relay.NoListen {
		// Published so that a bare NodeID finds the way through the head:
		// only a pinned head, as a reader must check the head's key.
		if id, _, err := core.ParseAddr(o.Join); err == nil && !id.IsZero() {
			n.via = []string{o.Join}
		} else {
			logger.Info("relay: --join pins no NodeID; the self-description does not name the head", "head", o.Join)
		}
	}
	n.status = newStatus(n, on, controlPath, rejects)
	life := &lifecycle{logger: logger}
	hs, err := build(n, on, life)
	if err != nil {
		return err
	}
	// Every return closes what the services opened, once the endpoint and
	// the tasks are done with it.
	closeAll := func() {
		if cerr := life.close(); cerr != nil {
			logger.Error("closing the services", "err", cerr)
		}
	}
	defer closeAll()
	router, err := core.NewRouter(hs...)
	if err != nil {
		return err
	}
	if controlPath != "" {
		ctl, err := newControl(n, router, controlPath)
		if err != nil {
			return err
		}
		life.add(part{listeners: []func() (func(context.Context) error, func() error, error){ctl.listen}})
	}
	listen := cfg.Node.ListenAddr()
	if o.Listen != "" {
		listen = o.Listen
	}
	web, renew, err := webCert(cfg.TLS, o.DataDir, listen, logger)
	if err != nil {
		return err
	}
	if renew != nil {
		life.add(part{tasks: []func(context.Context) error{renew}})
	}
	if n.status.webPin, err = WebPin(o.DataDir, cfg.TLS); err != nil {
		return err
	}
	ep, err := core.New(core.Config{
		Addr:          listen,
		Key:           o.Keys.Node,
		Router:        router,
		Identities:    identities,
		WebCert:       web,
		StandardALPNs: standardALPNs(router),
		NoALPN:        cfg.Node.NoALPN,
		NoEarlyData:   cfg.TLS.EarlyData != nil && !*cfg.TLS.EarlyData,
		Limits:        cfg.EndpointLimits(),
		Logger:        logger,
	})
	if err != nil {
		return err
	}
	if err := ep.Listen(); err != nil {
		return err
	}
	served := false
	life.onClose(func() error { // Serve closes them; without it, this does
		if served {
			return nil
		}
		return ep.Close()
	})
	n.bound.Store(ep.Addr().String())
	n.status.ep.Store(ep)
	if err := life.listen(); err != nil {
		return err
	}
	if o.Ready != nil {
		o.Ready(ep.Addr().String())
	}

	// reload applies the file, one reload at a time: the watcher's, or
	// sys/reload's (the control socket's, after a peers or token command).
	var reloading sync.Mutex
	reload := func(trigger string) error {
		reloading.Lock()
		defer reloading.Unlock()
		err := func() error {
			next, err := reloadConfig(o.ConfigPath)
			if err != nil {
				return err
			}
			d, err := next.Directory()
			if err != nil {
				return fmt.Errorf("%s: %w", o.ConfigPath, err)
			}
			if staticChanged(cfg, next) {
				logger.Warn("config: static settings changed; restart to apply them", "file", o.ConfigPath)
			}
			identities.Store(d)
			life.reload(next)
			ep.Revalidate()
			return nil
		}()
		n.status.reloaded(trigger, err)
		return err
	}
	n.status.setReload(func(context.Context) error {
		err := reload("control")
		if err != nil {
			logger.Error("config reload failed", "file", o.ConfigPath, "trigger", "control", "err", err)
		} else {
			logger.Info("config reloaded", "file", o.ConfigPath, "trigger", "control")
		}
		return err
	})
	reloader := &config.Reloader{
		Path:   o.ConfigPath,
		Logger: logger,
		Reload: func(context.Context) error { return reload("file or signal") },
	}
	reloadDone := make(chan error, 1)
	go func() { reloadDone <- reloader.Run(ctx) }()
	var joins sync.WaitGroup
	if o.Join != "" {
		d := &core.Dialer{Key: o.Keys.Node, KnownNodes: o.KnownNodes}
		joins.Go(func() {
			_ = call.Join(ctx, o.Join, call.Options{Dialer: d, Registry: n.calls, Identities: identities, Logger: logger})
		})
		// Reachable through the head on every ALPN: a registration of
		// its own, over QUIC (the head opens a stream per relayed
		// connection).
		if !cfg.Relay.NoListen {
			rd := &core.Dialer{Key: o.Keys.Node, KnownNodes: o.KnownNodes, Network: core.NetworkQUIC, Logger: logger}
			joins.Go(func() { _ = ep.ListenVia(ctx, rd, o.Join) })
		}
	}

	// Background tasks outlive the stop signal: they end only once the
	// endpoint drained its handlers, which may still use them.
	tasksCtx, endTasks := context.WithCancel(context.WithoutCancel(ctx))
	defer endTasks()
	life.start(ctx, tasksCtx)

	// The stop: say what is drained, then the endpoint stops accepting and
	// drains its handlers.
	serveCtx, drain := context.WithCancel(context.WithoutCancel(ctx))
	defer drain()
	context.AfterFunc(ctx, func() {
		logger.Info("stopping: draining connections", "connections", ep.Conns(), "workers", len(n.peers.List()))
		drain()
	})
	served = true
	err = ep.Serve(serveCtx)
	stop()
	endTasks()
	life.wait()
	joins.Wait()
	if rerr := <-reloadDone; rerr != nil {
		logger.Error("config watcher failed", "err", rerr)
	}
	closeAll()
	if errors.Is(err, core.ErrEndpointClosed) {
		logger.Info("stopped")
		return nil
	}
	return err
}

// webCert builds the web certificate the [tls] section asks for; without
// a certificate or ACME, the self-signed one for the listen address, and
// the task that renews it while the node runs (core re-reads the files
// when they change).
func webCert(t config.TLS, dir, listen string, logger *slog.Logger) (web *core.WebCert, renew func(context.Context) error, err error) {
	switch {
	case t.CertFile != "":
		web, err = core.WebCertFromFiles(t.CertFile, t.KeyFile)
		return web, nil, err
	case len(t.ACMEDomains) > 0:
		web, err = core.WebCertACME(core.ACMEConfig{
			Domains:      t.ACMEDomains,
			CacheDir:     filepath.Join(dir, "acme"),
			Email:        t.ACMEEmail,
			DirectoryURL: t.ACMEDirectory,
		})
		return web, nil, err
	}
	dnsNames, ips := webNames(t.Names, listen)
	cert, made, err := selfSignedWebCert(dir, dnsNames, ips, time.Now())
	if err != nil {
		return nil, nil, err
	}
	pin, err := SPKIPin(cert.Leaf.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	logger.Info("web certificate: self-signed", "file", filepath.Join(dir, WebCertFile), "new", made, "pin", pin, "expires", cert.Leaf.NotAfter.UTC().Format(time.DateOnly))
	web, err = core.WebCertFromFiles(filepath.Join(dir, WebCertFile), filepath.Join(dir, WebKeyFile))
	if err != nil {
		return nil, nil, err
	}
	renew = func(ctx context.Context) error {
		tick := time.NewTicker(webCertCheck)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-tick.C:
				cert, made, err := selfSignedWebCert(dir, dnsNames, ips, now)
				switch {
				case err != nil:
					logger.Error("web certificate: renewing the self-signed certificate", "err", err)
				case made:
					logger.Info("web certificate: self-signed, renewed (same key and pin)", "expires", cert.Leaf.NotAfter.UTC().Format(time.DateOnly))
				}
			}
		}
	}
	return web, renew, nil
}

// standardALPNs are the routed protocols that stock clients speak: they get
// the web certificate and no client-certificate request.
func standardALPNs(r *core.Router) []string {
	var std []string
	for _, p := range r.ALPNs() {
		switch p {
		case alkhttp.ALPNH3, alkhttp.ALPNH2, alkhttp.ALPNHTTP1, dns.ALPNDoQ, dns.ALPNDoT:
			std = append(std, p)
		}
	}
	return std
}

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
