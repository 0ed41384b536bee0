package http

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// metrics are the server's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg         *prometheus.Registry
	conns       *prometheus.CounterVec
	bytesIn     *prometheus.CounterVec
	bytesOut    *prometheus.CounterVec
	authRejects prometheus.Counter
	calls       *prometheus.CounterVec
	callErrors  *prometheus.CounterVec
	latency     *prometheus.HistogramVec
}

// newMetrics registers the metrics and makes calls observes every
// finished call of calls, from any front door (alknet/call included).
func newMetrics(calls *call.Registry) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alknet_http_connections_total", Help: "Connections served, by ALPN.",
		}, []string{"alpn"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alknet_http_received_bytes_total", Help: "Bytes read on h2 and http/1.1 connections, by ALPN.",
		}, []string{"alpn"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alknet_http_sent_bytes_total", Help: "Bytes written on h2 and http/1.1 connections, by ALPN.",
		}, []string{"alpn"}),
		authRejects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "alknet_http_auth_rejects_total", Help: "Requests refused for a bad credential.",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alknet_call_calls_total", Help: "Finished calls, by operation, over every front door.",
		}, []string{"op"}),
		callErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "alknet_call_errors_total", Help: "Failed calls, by operation.",
		}, []string{"op"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "alknet_call_duration_seconds", Help: "Call latency, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"op"}),
	}
	m.reg.MustRegister(m.conns, m.bytesIn, m.bytesOut, m.authRejects, m.calls, m.callErrors, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	calls.Observe(func(op string, d time.Duration, failed bool) {
		m.calls.WithLabelValues(op).Inc()
		if failed {
			m.callErrors.WithLabelValues(op).Inc()
		}
		m.latency.WithLabelValues(op).Observe(d.Seconds())
	})
	return m
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// trustedLocal reports whether the request gets loopback trust: the
// config opts in, it comes from a loopback address, the node's own
// forwarding did not open its connection, and no proxy says it relayed it
// (a Forwarded, X-Forwarded-For or X-Real-IP header: a reverse proxy on
// the machine connects from loopback on behalf of whoever it serves).
func (s *Server) trustedLocal(peer core.Peer, r *http.Request) bool {
	if !s.cfg.TrustLoopback || relayedByProxy(r.Header) {
		return false
	}
	text := r.RemoteAddr
	if peer.RemoteAddr != nil {
		text = peer.RemoteAddr.String()
	}
	ap, err := netip.ParseAddrPort(text)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return false
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap().WithZone(""), ap.Port())
	return s.cfg.Forwarded == nil || !s.cfg.Forwarded(ap)
}

// relayedByProxy reports whether h carries a header that HTTP proxies add
// to a request they relay (RFC 7239 Forwarded and its de-facto forms).
func relayedByProxy(h http.Header) bool {
	for _, k := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-Ip"} {
		if len(h.Values(k)) > 0 {
			return true
		}
	}
	return false
}
