package core

import (
	"errors"
	"fmt"
	"time"
)

// Limits bound what peers can make an endpoint hold. The zero value of each
// field means its default. A peer is "known" when its key or a token it
// presented resolved to an identity; every other peer is anonymous and gets
// the smaller budgets.
type Limits struct {
	// HandshakeTimeout bounds the TLS handshake; over QUIC, the wait for
	// the client's next packet during the handshake, and the whole
	// handshake to twice that (quic-go's HandshakeIdleTimeout). Default
	// 10s; at least 100ms.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a QUIC connection with no traffic for this long.
	// Default 60s; at least 1s.
	IdleTimeout time.Duration
	// KeepAlive is the QUIC keep-alive period and the TCP keep-alive
	// interval. Default 15s, at least 1s; negative disables keep-alives.
	KeepAlive time.Duration
	// AppIdleTimeout closes an anonymous peer's connection that has had
	// nothing in flight (no open stream, no byte moved, no request held
	// open by its handler) for this long, keep-alives notwithstanding.
	// Default 30s, at least 1s; negative disables it.
	AppIdleTimeout time.Duration
	// KnownAppIdleTimeout is AppIdleTimeout for known peers. Default 10m,
	// at least 1s; negative disables it.
	KnownAppIdleTimeout time.Duration
	// MaxConns caps concurrent connections. Default 10000.
	MaxConns int
	// MaxConnsPerIP caps concurrent connections from one source: an IPv4
	// address or an IPv6 prefix of IPv6PrefixLen bits. Default 100.
	MaxConnsPerIP int
	// IPv6PrefixLen is how many leading bits of an IPv6 address name one
	// source for MaxConnsPerIP, as a host usually gets a whole /64.
	// Default 64; 1..128.
	IPv6PrefixLen int
	// MaxStreamsPerConn caps concurrent peer-opened streams on one QUIC
	// connection. Default 100.
	MaxStreamsPerConn int
	// MaxInflightBytes caps the frame bytes being received at once over
	// all known peers' connections. Default 256 MiB.
	MaxInflightBytes int64
	// MaxConnInflightBytes caps the frame bytes being received at once on
	// one known peer's connection. Default 32 MiB.
	MaxConnInflightBytes int64
	// MaxIdentityInflightBytes caps the frame bytes being received at once
	// over all connections of one known identity, so that no one peer can
	// take MaxInflightBytes from the others. Default 64 MiB.
	MaxIdentityInflightBytes int64
	// MaxAnonInflightBytes caps the frame bytes being received at once
	// over all anonymous connections. Default 16 MiB.
	MaxAnonInflightBytes int64
	// MaxAnonConnInflightBytes caps the frame bytes being received at
	// once on one anonymous connection. Default 256 KiB.
	MaxAnonConnInflightBytes int64
	// FrameGrace is how long a frame that has started may take before
	// FrameMinRate applies. Default 10s; at least 100ms.
	FrameGrace time.Duration
	// FrameMinRate is the average rate, in bytes per second, at which a
	// started frame must keep arriving after FrameGrace. Default 16384.
	FrameMinRate int64
	// DrainTimeout is how long Shutdown waits for handlers before closing
	// what is left. Default 10s.
	DrainTimeout time.Duration
}

// DefaultLimits returns the limits used where a field is zero.
func DefaultLimits() Limits { return defaultLimits }

var defaultLimits = Limits{
	HandshakeTimeout:         10 * time.Second,
	IdleTimeout:              60 * time.Second,
	KeepAlive:                15 * time.Second,
	AppIdleTimeout:           30 * time.Second,
	KnownAppIdleTimeout:      10 * time.Minute,
	MaxConns:                 10000,
	MaxConnsPerIP:            100,
	IPv6PrefixLen:            64,
	MaxStreamsPerConn:        100,
	MaxInflightBytes:         256 << 20,
	MaxConnInflightBytes:     32 << 20,
	MaxIdentityInflightBytes: 64 << 20,
	MaxAnonInflightBytes:     16 << 20,
	MaxAnonConnInflightBytes: 256 << 10,
	FrameGrace:               10 * time.Second,
	FrameMinRate:             16 << 10,
	DrainTimeout:             10 * time.Second,
}

// withDefaults returns a copy of l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	d := defaultLimits
	setDefault(&l.HandshakeTimeout, d.HandshakeTimeout)
	setDefault(&l.IdleTimeout, d.IdleTimeout)
	setDefault(&l.KeepAlive, d.KeepAlive)
	setDefault(&l.AppIdleTimeout, d.AppIdleTimeout)
	setDefault(&l.KnownAppIdleTimeout, d.KnownAppIdleTimeout)
	setDefault(&l.MaxConns, d.MaxConns)
	setDefault(&l.MaxConnsPerIP, d.MaxConnsPerIP)
	setDefault(&l.IPv6PrefixLen, d.IPv6PrefixLen)
	setDefault(&l.MaxStreamsPerConn, d.MaxStreamsPerConn)
	setDefault(&l.MaxInflightBytes, d.MaxInflightBytes)
	setDefault(&l.MaxConnInflightBytes, d.MaxConnInflightBytes)
	setDefault(&l.MaxIdentityInflightBytes, d.MaxIdentityInflightBytes)
	setDefault(&l.MaxAnonInflightBytes, d.MaxAnonInflightBytes)
	setDefault(&l.MaxAnonConnInflightBytes, d.MaxAnonConnInflightBytes)
	setDefault(&l.FrameGrace, d.FrameGrace)
	setDefault(&l.FrameMinRate, d.FrameMinRate)
	setDefault(&l.DrainTimeout, d.DrainTimeout)
	return l
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate reports every out-of-range field at once. A duration below its
// minimum is refused rather than clipped: "1ns" is a typo, not a setting.
func (l Limits) Validate() error {
	var errs []error
	for _, d := range []struct {
		name     string
		v, min   time.Duration
		negative bool // negative means "off"
	}{
		{"handshake_timeout", l.HandshakeTimeout, 100 * time.Millisecond, false},
		{"idle_timeout", l.IdleTimeout, time.Second, false},
		{"keep_alive", l.KeepAlive, time.Second, true},
		{"app_idle_timeout", l.AppIdleTimeout, time.Second, true},
		{"known_app_idle_timeout", l.KnownAppIdleTimeout, time.Second, true},
		{"frame_grace", l.FrameGrace, 100 * time.Millisecond, false},
		{"drain_timeout", l.DrainTimeout, 0, false},
	} {
		switch {
		case d.v < 0 && !d.negative:
			errs = append(errs, fmt.Errorf("limits.%s: %v is negative", d.name, d.v))
		case d.v > 0 && d.v < d.min:
			errs = append(errs, fmt.Errorf("limits.%s: %v is below the minimum %v", d.name, d.v, d.min))
		}
	}
	for _, n := range []struct {
		name      string
		v, lo, hi int64
	}{
		{"max_conns", int64(l.MaxConns), 0, 1 << 24},
		{"max_conns_per_ip", int64(l.MaxConnsPerIP), 0, 1 << 24},
		{"ipv6_prefix_len", int64(l.IPv6PrefixLen), 0, 128},
		{"max_streams_per_conn", int64(l.MaxStreamsPerConn), 0, 1 << 24},
		{"max_inflight_bytes", l.MaxInflightBytes, 0, 1 << 40},
		{"max_conn_inflight_bytes", l.MaxConnInflightBytes, 0, 1 << 40},
		{"max_identity_inflight_bytes", l.MaxIdentityInflightBytes, 0, 1 << 40},
		{"max_anon_inflight_bytes", l.MaxAnonInflightBytes, 0, 1 << 40},
		{"max_anon_conn_inflight_bytes", l.MaxAnonConnInflightBytes, 0, 1 << 40},
		{"frame_min_rate", l.FrameMinRate, 0, 1 << 40},
	} {
		if n.v < n.lo || n.v > n.hi {
			errs = append(errs, fmt.Errorf("limits.%s: %d out of range %d..%d", n.name, n.v, n.lo, n.hi))
		}
	}
	return errors.Join(errs...)
}

// appIdle returns the application idle timeout for a connection, 0 when
// there is none.
func (l Limits) appIdle(known bool) time.Duration {
	d := l.AppIdleTimeout
	if known {
		d = l.KnownAppIdleTimeout
	}
	return max(d, 0)
}
