package sshbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/alkdev/alknet/alknet/bench/internal/bare"
	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/quic-go/quic-go"
)

// bareForward is -L over bare quic-go, without core, alknet/fwd or SSH: a
// local TCP listener whose every connection is one stream of one quic-go
// connection (core's client and server configs) to a server that dials
// the target for each stream. It is the ceiling alknet/fwd is measured
// against on QUIC (goal >= 0.9x).
type bareForward struct {
	ln  net.Listener
	srv *bareQUICServerLn
	qc  *quic.Conn
	wg  sync.WaitGroup
}

// bareQUICServerLn is the server side of a bareForward.
type bareQUICServerLn struct {
	udp *net.UDPConn
	tr  *quic.Transport
	ln  *quic.Listener
}

// startBareForward forwards a new 127.0.0.1 port to target; stop ends
// everything it started.
func startBareForward(ctx context.Context, target string) (addr string, stop func() error, err error) {
	key, err := harness.NewKey()
	if err != nil {
		return "", nil, err
	}
	tlsConf, err := bare.ServerTLSConfig(key)
	if err != nil {
		return "", nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return "", nil, fmt.Errorf("bench: bare forward: %w", err)
	}
	_ = udp.SetReadBuffer(bare.UDPBufferBytes)
	_ = udp.SetWriteBuffer(bare.UDPBufferBytes)
	tr := &quic.Transport{Conn: udp}
	qln, err := tr.Listen(tlsConf, bare.ServerQUICConfig())
	if err != nil {
		udp.Close()
		return "", nil, fmt.Errorf("bench: bare forward: %w", err)
	}
	f := &bareForward{srv: &bareQUICServerLn{udp: udp, tr: tr, ln: qln}}
	f.wg.Go(func() { f.serve(target) })
	f.qc, err = bare.DialBareQUIC(ctx, key, harness.NodeID(key).String()+"@"+udp.LocalAddr().String())
	if err == nil {
		f.ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return "", nil, errors.Join(err, f.close())
	}
	f.wg.Go(f.accept)
	return f.ln.Addr().String(), f.close, nil
}

// serve accepts the client's connection and serves its streams.
func (f *bareForward) serve(target string) {
	for {
		qc, err := f.srv.ln.Accept(context.Background())
		if err != nil {
			return
		}
		f.wg.Go(func() {
			for {
				st, err := qc.AcceptStream(context.Background())
				if err != nil {
					return
				}
				f.wg.Go(func() {
					c, err := net.Dial("tcp", target)
					if err != nil {
						st.CancelRead(1)
						st.CancelWrite(1)
						return
					}
					relayQUIC(st, c.(*net.TCPConn))
				})
			}
		})
	}
}

// accept forwards each local connection on a new stream.
func (f *bareForward) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Go(func() {
			st, err := f.qc.OpenStreamSync(context.Background())
			if err != nil {
				c.Close()
				return
			}
			relayQUIC(st, c.(*net.TCPConn))
		})
	}
}

// relayQUIC copies both ways, passing each end on as a half-close.
func relayQUIC(st *quic.Stream, c *net.TCPConn) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(st, c)
		_ = st.Close() // FIN: the send side only
	})
	_, _ = io.Copy(c, st)
	_ = c.CloseWrite()
	wg.Wait()
	st.CancelRead(0)
	_ = c.Close()
}

func (f *bareForward) close() error {
	if f.ln != nil {
		_ = f.ln.Close()
	}
	if f.qc != nil {
		_ = f.qc.CloseWithError(0, "")
	}
	_ = f.srv.ln.Close()
	err := f.srv.tr.Close()
	_ = f.srv.udp.Close()
	f.wg.Wait()
	return err
}
