package netutil

import (
	"context"
	"fmt"
	"net"
)

// samePortTries bounds the attempts of [ListenSamePort] at port 0: the
// free UDP port the kernel picks may be taken for TCP.
const samePortTries = 20

// ListenSamePort binds UDP on addr ("host:port") and TCP on the same host
// and port, as QUIC with a TCP+TLS fallback and classic DNS need. With
// port 0 the kernel picks a free UDP port; when TCP cannot have it, the
// pair is tried again, up to 20 times. lc configures both sockets (nil:
// the zero ListenConfig). The caller owns and closes both.
func ListenSamePort(ctx context.Context, lc *net.ListenConfig, addr string) (*net.UDPConn, net.Listener, error) {
	if lc == nil {
		lc = &net.ListenConfig{}
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, err
	}
	var lastErr error
	for range samePortTries {
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return nil, nil, err
		}
		udp, ok := pc.(*net.UDPConn)
		if !ok {
			_ = pc.Close()
			return nil, nil, fmt.Errorf("listen udp %s: got a %T", addr, pc)
		}
		tcp, err := lc.Listen(ctx, "tcp", udp.LocalAddr().String())
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, lastErr
}
