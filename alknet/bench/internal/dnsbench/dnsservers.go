package dnsbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/bind"    // the Corefile's bind directive
	_ "github.com/coredns/coredns/plugin/file"    // the Corefile's file directive
	_ "github.com/coredns/coredns/plugin/minimal" // the Corefile's minimal directive

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
)

// alknetDNS is the alknet side of the DNS comparison, in this process: a
// dns.Server with its classic UDP/TCP listener, and the same server on a
// core.Endpoint for doq and dot (TCP+TLS clients offering no ALPN, such as
// dnsperf, reach dot).
type alknetDNS struct {
	classicAddr string // host:port of the classic listener
	node        string // "<nodeid>@127.0.0.1:<port>" of the endpoint
	ep          *core.Endpoint
	cancel      context.CancelFunc
	served      chan error // the classic listener's and the endpoint's Serve
}

// startAlknetDNS serves zoneFile on 127.0.0.1: classic UDP/TCP on one free
// port, doq and dot on another. Logs are discarded.
func startAlknetDNS(zoneFile string) (*alknetDNS, error) {
	logger := harness.Discard()
	zones, err := dns.NewZones([]dns.ZoneConfig{{Origin: dnsOrigin, File: zoneFile}})
	if err != nil {
		return nil, fmt.Errorf("bench: alknet dns: %w", err)
	}
	srv, err := dns.New(dns.Config{Zones: zones, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("bench: alknet dns: %w", err)
	}
	key, err := harness.NewKey()
	if err != nil {
		return nil, err
	}
	router, err := core.NewRouter(srv)
	if err != nil {
		return nil, fmt.Errorf("bench: alknet dns: %w", err)
	}
	ep, err := core.New(core.Config{Addr: "127.0.0.1:0", Key: key, Router: router, NoALPN: dns.ALPNDoT,
		Limits: harness.BenchLimits, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("bench: alknet dns: %w", err)
	}
	if err := ep.Listen(); err != nil {
		return nil, fmt.Errorf("bench: alknet dns: %w", err)
	}
	classic, err := srv.ListenClassic("127.0.0.1:0")
	if err != nil {
		_ = ep.Shutdown(context.Background())
		return nil, fmt.Errorf("bench: alknet dns: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &alknetDNS{
		classicAddr: classic.Addr().String(),
		node:        ep.NodeID().String() + "@" + ep.Addr().String(),
		ep:          ep,
		cancel:      cancel,
		served:      make(chan error, 2),
	}
	go func() { a.served <- classic.Serve(ctx) }()
	go func() { a.served <- ep.Serve(ctx) }()
	return a, nil
}

// close stops both listeners and waits for them.
func (a *alknetDNS) close() error {
	sctx, cancel := context.WithTimeout(context.Background(), harness.ShutdownTimeout)
	defer cancel()
	err := a.ep.Shutdown(sctx)
	a.cancel()
	for range 2 {
		serr := <-a.served
		if !errors.Is(serr, context.Canceled) && !errors.Is(serr, core.ErrEndpointClosed) {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		return fmt.Errorf("bench: alknet dns shutdown: %w", err)
	}
	return nil
}

// coreDNS is CoreDNS (github.com/coredns/coredns, built into this binary
// with the bind, file and minimal plugins only) in this process.
type coreDNS struct {
	addr string // host:port, UDP and TCP
	inst *caddy.Instance
}

// coreDNSStart serializes CoreDNS starts: caddy keeps global state.
var coreDNSStart sync.Mutex

// startCoreDNS serves zoneFile for [dnsOrigin] on a free port of 127.0.0.1
// with this Corefile: bind 127.0.0.1, file (reloading off) and minimal, so
// that positive answers carry the answer section only, as alknet's do.
func startCoreDNS(zoneFile string) (*coreDNS, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	corefile := fmt.Sprintf("%s:%d {\n\tbind 127.0.0.1\n\tminimal\n\tfile %s {\n\t\treload 0\n\t}\n}\n", dnsOrigin, port, zoneFile)
	coreDNSStart.Lock()
	defer coreDNSStart.Unlock()
	caddy.Quiet = true
	dnsserver.Quiet = true
	inst, err := caddy.Start(caddy.CaddyfileInput{Contents: []byte(corefile), Filepath: "Corefile", ServerTypeName: "dns"})
	if err != nil {
		return nil, fmt.Errorf("bench: coredns: %w", err)
	}
	return &coreDNS{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), inst: inst}, nil
}

// close stops CoreDNS.
func (c *coreDNS) close() error {
	if err := c.inst.Stop(); err != nil {
		return fmt.Errorf("bench: coredns stop: %w", err)
	}
	c.inst.Wait()
	return nil
}
