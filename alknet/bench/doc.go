// Package bench measures alknet against its performance goals.
//
// Scenarios, each usable from testing.B and from the alknet-bench
// command (cmd/alknet-bench), which interleaves runs so that machine noise
// hits every variant alike and reports medians and ratios:
//
//   - B1, stream throughput ([Target], [CompareThroughput]): alknet/perf
//     through core.Endpoint and its router, against the same wire protocol
//     on a bare quic-go listener (router overhead) and on crypto/tls over
//     TCP (the QUIC/TCP ratio).
//   - B2, connection set-up ([SetupServer], [CompareHandshakes]):
//     handshakes per second and connect-to-first-byte latency, QUIC against
//     TCP+TLS 1.3, both through core.Endpoint and core.Dialer.
//   - Serve ([MeasureServe]): start-to-ready time and idle resident memory
//     of the `alknet serve` binary.
//   - Calls ([CompareCalls], [CompareSubscriptions]): request/response latency
//     and throughput of alknet/call against gRPC and NATS request-reply,
//     direct and routed through a head to a worker, and subscription
//     event rates.
//   - SSH ([CompareSSH]): tunnel throughput (iperf3), SOCKS5 latency, SFTP
//     get/put and session set-up against OpenSSH's sshd.
//   - git ([CompareGit]): clone, shallow clone, fetch and push against
//     git daemon, wall time and peak memory.
//   - DNS ([CompareDNS]): UDP queries against CoreDNS, DoQ against DoT.
//   - fs ([CompareFS]): add against dd, get against raw alknet/perf.
//   - wan ([RunWAN]): transfers over emulated internet paths. [StartLink]
//     joins two network namespaces through a user-space TUN forwarder
//     with delay, jitter, random and Gilbert-Elliott loss, a rate limit and
//     a drop-tail queue ([LinkProfile], [LinkProfiles]); [Link.Verify]
//     proves the emulator is not the bottleneck before a profile counts.
//
// Everything else runs on loopback in one process (the serve scenario in a
// child process), so client and server share the machine's cores: the
// numbers are comparable with each other, not with a two-machine test.
package bench
