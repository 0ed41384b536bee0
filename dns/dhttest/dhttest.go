// Package dhttest runs a private BitTorrent Mainline DHT on the loopback
// interface for tests: a few anacrolix/dht servers that know each other and
// store BEP 44 items, and reach nothing outside. Point a dns.DHT's
// Bootstrap (or alknet.toml's dns.dht_bootstrap) at [Network.Addrs].
package dhttest

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/anacrolix/dht/v2"
	"github.com/anacrolix/dht/v2/bep44"
	alog "github.com/anacrolix/log"
	"golang.org/x/time/rate"
)

// Network is a running private DHT.
type Network struct {
	servers []*dht.Server
}

// Start starts n servers on 127.0.0.1, each with every other in its
// routing table as a good node. They answer queries and store items; they start no
// traversal of their own.
func Start(n int) (*Network, error) { return StartAt("127.0.0.1", n) }

// StartAt is Start with the servers on the IPv4 address host (one of a
// network namespace's, say).
func StartAt(host string, n int) (*Network, error) {
	if n < 1 {
		return nil, errors.New("dhttest: want at least one server")
	}
	logger := alog.NewLogger("dhttest")
	logger.SetHandlers(alog.DiscardHandler)
	nw := &Network{}
	for range n {
		conn, err := net.ListenPacket("udp4", net.JoinHostPort(host, "0"))
		if err != nil {
			nw.Close()
			return nil, fmt.Errorf("dhttest: %w", err)
		}
		s, err := dht.NewServer(&dht.ServerConfig{
			Conn:        conn,
			NoSecurity:  true,
			Store:       bep44.NewMemory(),
			Exp:         time.Hour,
			Logger:      logger,
			SendLimiter: rate.NewLimiter(rate.Inf, 0),
		})
		if err != nil {
			conn.Close()
			nw.Close()
			return nil, fmt.Errorf("dhttest: %w", err)
		}
		nw.servers = append(nw.servers, s)
	}
	// A node hands out only nodes it heard from lately: each pings every
	// other, which puts it in the other's table as good.
	for _, s := range nw.servers {
		for _, o := range nw.servers {
			if o == s {
				continue
			}
			if err := s.Ping(o.Addr().(*net.UDPAddr)).ToError(); err != nil {
				nw.Close()
				return nil, fmt.Errorf("dhttest: ping: %w", err)
			}
		}
	}
	return nw, nil
}

// Addrs returns the servers' host:port.
func (nw *Network) Addrs() []string {
	out := make([]string, len(nw.servers))
	for i, s := range nw.servers {
		out[i] = s.Addr().String()
	}
	return out
}

// Close stops every server.
func (nw *Network) Close() {
	for _, s := range nw.servers {
		s.Close()
	}
}
