// Package wan runs transfers over emulated internet paths ([RunWAN],
// [ReportTransfers]): alknet against TCP and OpenSSH on each
// [netem.LinkProfile], plus the QUIC-specific measurements (direction
// switch, path choice, QUIC knobs, handshakes, forward latency).
package wan
