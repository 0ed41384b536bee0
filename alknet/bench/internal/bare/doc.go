// Package bare holds the baselines without alknet's router: an
// alknet/perf server and client on a bare quic-go listener and on
// crypto/tls over TCP ([ListenBareQUIC], [ListenBareTLS]).
package bare
