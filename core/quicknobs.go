package core

import (
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
)

// Receive windows of core's QUIC connections, both the node's and a
// [Dialer]'s (docs/benchmarks.md, "Real paths: quic-go knobs"). quic-go's
// defaults let a stream's window grow to 6 MiB and a connection's to 15
// MiB: a sender can have no more than that in flight, so a stream is
// capped at window/RTT, and the RTT grows with the bottleneck's queue
// (6 MiB over a 600 ms path is 84 Mbit/s at best; measured 24-48 against
// 79-85 with these). quic-go grows a window from the initial 512 KiB only
// while the application reads as fast as data arrives, so the larger
// maximum is reached only on paths that need it; it is also what a peer
// can make the receiver buffer (out-of-order data up to the window), which
// is why the node's connection window grows by 9 MiB and not more.
const (
	QUICMaxStreamReceiveWindow     = 16 << 20
	QUICMaxConnectionReceiveWindow = 24 << 20
)

// defaultDialQUICConfig is the QUIC config of a [Dialer] without one.
func defaultDialQUICConfig() *quic.Config {
	return &quic.Config{
		KeepAlivePeriod:            15 * time.Second,
		MaxStreamReceiveWindow:     QUICMaxStreamReceiveWindow,
		MaxConnectionReceiveWindow: QUICMaxConnectionReceiveWindow,
		Tracer:                     qlog.DefaultConnectionTracer, // only with $QLOGDIR
	}
}
