package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/core/netutil"
)

// Classic is a plain DNS listener on UDP and TCP (RFC 1035), for dig and
// for resolvers that forward to the node. It is off unless the CLI
// configures an address.
type Classic struct {
	s   *Server
	udp net.PacketConn
	tcp net.Listener
}

// ListenClassic binds UDP and TCP on addr (port 0: one free port for both).
// Serve answers on them.
func (s *Server) ListenClassic(addr string) (*Classic, error) {
	udp, tcp, err := netutil.ListenSamePort(context.Background(), nil, addr)
	if err != nil {
		return nil, fmt.Errorf("dns: classic listener: %w", err)
	}
	return &Classic{s: s, udp: udp, tcp: tcp}, nil
}

// Addr returns the bound address (UDP; TCP has the same port).
func (c *Classic) Addr() net.Addr { return c.udp.LocalAddr() }

// Close closes both sockets; it is for a listener Serve never ran on (Serve
// closes them itself when it returns).
func (c *Classic) Close() error {
	return errors.Join(c.udp.Close(), c.tcp.Close())
}

// Serve answers queries until ctx ends, then shuts both listeners down,
// waiting for answers in flight. It always returns a non-nil error; after
// ctx ends it is ctx's error.
func (c *Classic) Serve(ctx context.Context) error {
	h := mdns.HandlerFunc(c.serveDNS)
	udp := &mdns.Server{PacketConn: c.udp, Handler: h, UDPSize: c.s.cfg.MaxUDPBytes}
	tcp := &mdns.Server{Listener: c.tcp, Handler: h, IdleTimeout: func() time.Duration { return c.s.cfg.IdleTimeout }}
	errc := make(chan error, 2)
	var wg sync.WaitGroup
	for _, srv := range []*mdns.Server{udp, tcp} {
		wg.Go(func() { errc <- srv.ActivateAndServe() })
	}
	var err error
	select {
	case <-ctx.Done():
		err = ctx.Err()
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = udp.ShutdownContext(sctx)
	_ = tcp.ShutdownContext(sctx)
	_ = c.udp.Close()
	_ = c.tcp.Close()
	wg.Wait()
	if err == nil {
		err = errors.New("dns: classic listener stopped")
	}
	return err
}

func (c *Classic) serveDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	size := 0
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		size = c.s.cfg.MaxUDPBytes
	}
	resp := c.s.Answer(req, size)
	if resp == nil {
		return
	}
	_ = w.WriteMsg(resp)
}
