package core

import (
	"errors"
	"fmt"
	"time"
)

// Limits bound what peers can make an endpoint hold. The zero value of each
// field means its default.
type Limits struct {
	// HandshakeTimeout bounds the TLS (or QUIC) handshake. Default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a QUIC connection with no traffic for this long.
	// Default 60s.
	IdleTimeout time.Duration
	// KeepAlive is the QUIC keep-alive period and the TCP keep-alive
	// interval. Default 15s; negative disables keep-alives.
	KeepAlive time.Duration
	// MaxConns caps concurrent connections. Default 10000.
	MaxConns int
	// MaxConnsPerIP caps concurrent connections from one IP address.
	// Default 100.
	MaxConnsPerIP int
	// MaxStreamsPerConn caps concurrent peer-opened streams on one QUIC
	// connection. Default 100.
	MaxStreamsPerConn int
	// DrainTimeout is how long Shutdown waits for handlers before closing
	// what is left. Default 10s.
	DrainTimeout time.Duration
}

// DefaultLimits are the limits used where a field is zero.
var DefaultLimits = Limits{
	HandshakeTimeout:  10 * time.Second,
	IdleTimeout:       60 * time.Second,
	KeepAlive:         15 * time.Second,
	MaxConns:          10000,
	MaxConnsPerIP:     100,
	MaxStreamsPerConn: 100,
	DrainTimeout:      10 * time.Second,
}

// withDefaults returns a copy of l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.HandshakeTimeout != 0 {
		d.HandshakeTimeout = l.HandshakeTimeout
	}
	if l.IdleTimeout != 0 {
		d.IdleTimeout = l.IdleTimeout
	}
	if l.KeepAlive != 0 {
		d.KeepAlive = l.KeepAlive
	}
	if l.MaxConns != 0 {
		d.MaxConns = l.MaxConns
	}
	if l.MaxConnsPerIP != 0 {
		d.MaxConnsPerIP = l.MaxConnsPerIP
	}
	if l.MaxStreamsPerConn != 0 {
		d.MaxStreamsPerConn = l.MaxStreamsPerConn
	}
	if l.DrainTimeout != 0 {
		d.DrainTimeout = l.DrainTimeout
	}
	return d
}

// Validate reports every out-of-range field at once.
func (l Limits) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"handshake_timeout", l.HandshakeTimeout},
		{"idle_timeout", l.IdleTimeout},
		{"drain_timeout", l.DrainTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("limits.%s: %v is negative", d.name, d.v))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"max_conns", l.MaxConns},
		{"max_conns_per_ip", l.MaxConnsPerIP},
		{"max_streams_per_conn", l.MaxStreamsPerConn},
	} {
		if n.v < 0 || n.v > 1<<24 {
			errs = append(errs, fmt.Errorf("limits.%s: %d out of range 0..%d", n.name, n.v, 1<<24))
		}
	}
	return errors.Join(errs...)
}
