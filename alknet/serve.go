package main

import (
	"context"
	"errors"
	"fmt"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
	alkhttp "github.com/alkdev/alknet/http"
)

var serveCommand = &cli.Command{
	Name:  "serve",
	Usage: "run the node: every service on one port",
	Description: "Runs every service on one address for QUIC and TCP+TLS (default [::]:4433). With no\n" +
		"config file it runs on embedded defaults; the vault is created on first start.\n" +
		"Peers and tokens in the config file are reloaded on SIGHUP and when the file changes.",
	Flags: withCommon(
		&cli.StringFlag{
			Name:  "listen",
			Usage: "host:port for QUIC and TCP+TLS (overrides node.listen)",
		},
		&cli.StringFlag{
			Name:  "join",
			Usage: "also act as a worker of the head at [NODEID@]HOST:PORT: stay connected and serve it this node's operations",
		},
	),
	Action: serve,
}

func serve(c *cli.Context) error {
	logger, err := newLogger(c)
	if err != nil {
		return err
	}
	dir, err := dataDir(c)
	if err != nil {
		return err
	}
	cfgPath := configPath(c, dir)
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	if soft, hard, err := core.RaiseFileLimit(); err != nil {
		logger.Warn("file descriptor limit", "soft", soft, "hard", hard, "err", err)
	} else {
		logger.Info("file descriptor limit", "soft", soft, "hard", hard)
	}
	keys, err := nodeKeys(c, dir)
	if err != nil {
		return err
	}
	directory, err := cfg.Directory()
	if err != nil {
		return fmt.Errorf("%s: %w", cfgPath, err)
	}
	identities := core.NewLiveDirectory(directory, nil)
	svcs, err := enabled(services(), cfg.Services.Disable)
	if err != nil {
		return fmt.Errorf("%s: %w", cfgPath, err)
	}
	n := &node{
		logger:     logger,
		key:        keys.node,
		msgKey:     keys.msg,
		mixSeed:    keys.mixSeed,
		id:         nodeID(keys.node),
		dataDir:    dir,
		cfg:        cfg,
		identities: identities,
		calls:      call.NewRegistry(),
		peers:      call.NewPeers(call.First, logger),
	}
	life := &lifecycle{logger: logger}
	hs, err := build(n, svcs, life)
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
	web, err := webCert(cfg.TLS, dir)
	if err != nil {
		return err
	}
	listen := cfg.Node.ListenAddr()
	if c.IsSet("listen") {
		listen = c.String("listen")
	}
	ep, err := core.New(core.Config{
		Addr:          listen,
		Key:           keys.node,
		Router:        router,
		Identities:    identities,
		WebCert:       web,
		StandardALPNs: standardALPNs(router),
		NoALPN:        cfg.Node.NoALPN,
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
	if err := life.listen(); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// After the first signal starts the graceful stop, a second one ends the
	// process at once (the default action).
	context.AfterFunc(ctx, stop)
	reloader := &config.Reloader{
		Path:   cfgPath,
		Logger: logger,
		Reload: func(context.Context) error {
			next, err := reloadConfig(cfgPath)
			if err != nil {
				return err
			}
			d, err := next.Directory()
			if err != nil {
				return fmt.Errorf("%s: %w", cfgPath, err)
			}
			if staticChanged(cfg, next) {
				logger.Warn("config: static settings changed; restart to apply them", "file", cfgPath)
			}
			identities.Store(d)
			n.reload(next)
			ep.Revalidate()
			return nil
		},
	}
	reloadDone := make(chan error, 1)
	go func() { reloadDone <- reloader.Run(ctx) }()
	joinDone := make(chan struct{})
	if head := c.String("join"); head != "" {
		d := &core.Dialer{Key: keys.node, KnownNodes: core.NewKnownNodes(filepath.Join(dir, knownNodesFile))}
		go func() {
			defer close(joinDone)
			_ = call.Join(ctx, head, call.Options{Dialer: d, Registry: n.calls, Identities: identities, Logger: logger})
		}()
	} else {
		close(joinDone)
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
	<-joinDone
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

// webCert builds the web certificate the [tls] section asks for, if any.
func webCert(t config.TLS, dir string) (*core.WebCert, error) {
	switch {
	case t.CertFile != "":
		return core.WebCertFromFiles(t.CertFile, t.KeyFile)
	case len(t.ACMEDomains) > 0:
		return core.WebCertACME(core.ACMEConfig{
			Domains:      t.ACMEDomains,
			CacheDir:     filepath.Join(dir, "acme"),
			Email:        t.ACMEEmail,
			DirectoryURL: t.ACMEDirectory,
		})
	}
	return nil, nil
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
