// Package throughput is benchmark B1, stream throughput
// ([CompareThroughput]): alknet/perf through core.Endpoint and its router,
// against the same wire protocol on a bare quic-go listener (router
// overhead) and on crypto/tls over TCP (the QUIC/TCP ratio).
package throughput
