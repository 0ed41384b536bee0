package bare

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/perf"
	"github.com/quic-go/quic-go"
)

// The bare servers speak the alknet/perf wire protocol without core: no
// endpoint, no router, no access check. They copy the per-stream code of
// core/perf exactly (8-byte request, io.Copy to io.Discard, 64 KiB writes),
// so that what differs from the router path is the router path itself.

// UDPBufferBytes is the UDP socket buffer size core.Endpoint and quic-go ask
// for; the bare QUIC server asks for the same.
const UDPBufferBytes = 7 << 20

// HeaderTimeout bounds the wait for a stream's request, as in core/perf.
const HeaderTimeout = 10 * time.Second

// ServerQUICConfig is the quic.Config core.Endpoint builds from
// core.DefaultLimits.
func ServerQUICConfig() *quic.Config {
	lim := core.DefaultLimits()
	return &quic.Config{
		HandshakeIdleTimeout: lim.HandshakeTimeout,
		MaxIdleTimeout:       lim.IdleTimeout,
		MaxIncomingStreams:   int64(lim.MaxStreamsPerConn),
		KeepAlivePeriod:      lim.KeepAlive,
	}
}

// clientQUICConfig is the quic.Config core.Dialer uses by default.
func clientQUICConfig() *quic.Config {
	return &quic.Config{KeepAlivePeriod: 15 * time.Second}
}

// ServerTLSConfig is core.Endpoint's TLS configuration for an alknet
// protocol: TLS 1.3, the Ed25519 node certificate, a client certificate
// requested but not required.
func ServerTLSConfig(key ed25519.PrivateKey) (*tls.Config, error) {
	cert, err := core.NodeCertificate(key)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{perf.ALPN},
		ClientAuth:   tls.RequestClientCert,
		Certificates: []tls.Certificate{cert},
	}, nil
}

// clientTLSConfig is core.Dialer's TLS configuration: TLS 1.3, the client
// certificate, and the server's key checked against pin instead of a CA.
func clientTLSConfig(key ed25519.PrivateKey, pin core.NodeID) (*tls.Config, error) {
	cert, err := core.NodeCertificate(key)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		NextProtos:         []string{perf.ALPN},
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // replaced by the pin check
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("bench: server presented no certificate")
			}
			id, err := core.NodeIDFromCertificate(raw[0])
			if err != nil {
				return err
			}
			if id != pin {
				return fmt.Errorf("bench: server key %s is not the pinned %s", id.ShortString(), pin.ShortString())
			}
			return nil
		},
	}, nil
}

// BareQUICServer serves the perf protocol on a quic.Listener.
type BareQUICServer struct {
	UDP *net.UDPConn
	tr  *quic.Transport
	ln  *quic.Listener
	id  core.NodeID

	// GSO records quic-go's GSO state of the last accepted connection.
	GSO atomic.Bool

	wg sync.WaitGroup // the accept loop, connections and streams
}

// ListenBareQUIC binds 127.0.0.1:0 the way core.Endpoint does (raise the
// UDP buffers, then hand the socket to a quic.Transport) and serves until
// close.
func ListenBareQUIC(key ed25519.PrivateKey) (*BareQUICServer, error) {
	tlsConf, err := ServerTLSConfig(key)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("bench: bare quic listen: %w", err)
	}
	_ = udp.SetReadBuffer(UDPBufferBytes)
	_ = udp.SetWriteBuffer(UDPBufferBytes)
	tr := &quic.Transport{Conn: udp}
	ln, err := tr.Listen(tlsConf, ServerQUICConfig())
	if err != nil {
		udp.Close()
		return nil, fmt.Errorf("bench: bare quic listen: %w", err)
	}
	s := &BareQUICServer{UDP: udp, tr: tr, ln: ln, id: harness.NodeID(key)}
	s.wg.Go(s.accept)
	return s, nil
}

func (s *BareQUICServer) accept() {
	for {
		qc, err := s.ln.Accept(context.Background())
		if err != nil {
			return // listener closed
		}
		s.GSO.Store(qc.ConnectionState().GSO)
		s.wg.Go(func() {
			defer qc.CloseWithError(0, "")
			for {
				st, err := qc.AcceptStream(context.Background())
				if err != nil {
					return
				}
				s.wg.Go(func() { _ = servePerfStream(BareQUICStream{st}) })
			}
		})
	}
}

// Addr is the pinned dial address "<nodeid>@127.0.0.1:<port>".
func (s *BareQUICServer) Addr() string { return s.id.String() + "@" + s.UDP.LocalAddr().String() }

// Close stops the listener and every connection and waits for them.
func (s *BareQUICServer) Close() error {
	err := s.ln.Close()
	err = errors.Join(err, s.tr.Close())
	s.wg.Wait()
	return errors.Join(err, s.UDP.Close())
}

// BareTLSServer serves the perf protocol on crypto/tls over TCP, one stream
// per connection.
type BareTLSServer struct {
	ln net.Listener
	id core.NodeID

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// ListenBareTLS listens on 127.0.0.1:0 and serves until close.
func ListenBareTLS(key ed25519.PrivateKey) (*BareTLSServer, error) {
	tlsConf, err := ServerTLSConfig(key)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: tcp listen: %w", err)
	}
	s := &BareTLSServer{ln: ln, id: harness.NodeID(key), conns: make(map[net.Conn]struct{})}
	s.wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			s.mu.Lock()
			s.conns[nc] = struct{}{}
			s.mu.Unlock()
			s.wg.Go(func() {
				defer func() {
					s.mu.Lock()
					delete(s.conns, nc)
					s.mu.Unlock()
				}()
				tc := tls.Server(nc, tlsConf)
				defer tc.Close()
				if err := tc.Handshake(); err != nil {
					return
				}
				_ = servePerfStream(tlsStream{tc})
			})
		}
	})
	return s, nil
}

// Addr is the pinned dial address "<nodeid>@127.0.0.1:<port>".
func (s *BareTLSServer) Addr() string { return s.id.String() + "@" + s.ln.Addr().String() }

// Close stops the listener, closes the open connections and waits.
func (s *BareTLSServer) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// servePerfStream is core/perf's server side of one stream.
func servePerfStream(s core.Stream) error {
	defer s.Close()
	var hdr [8]byte
	_ = s.SetReadDeadline(time.Now().Add(HeaderTimeout))
	if _, err := io.ReadFull(s, hdr[:]); err != nil {
		return fmt.Errorf("bench: read request: %w", err)
	}
	_ = s.SetReadDeadline(time.Time{})
	n := binary.BigEndian.Uint64(hdr[:])
	if n > perf.DefaultMaxBytes {
		return fmt.Errorf("bench: %d bytes requested, limit %d", n, uint64(perf.DefaultMaxBytes))
	}
	if _, err := io.Copy(io.Discard, s); err != nil {
		return fmt.Errorf("bench: drain upload: %w", err)
	}
	if err := writeZeros(s, int64(n)); err != nil {
		return fmt.Errorf("bench: send: %w", err)
	}
	return s.CloseWrite()
}

// zeros is the send buffer, the size core/perf writes in.
var zeros = make([]byte, 64<<10)

func writeZeros(w io.Writer, n int64) error {
	for n > 0 {
		k, err := w.Write(zeros[:min(int64(len(zeros)), n)])
		n -= int64(k)
		if err != nil {
			return err
		}
	}
	return nil
}

// BareQUICStream gives a *quic.Stream core.Stream's semantics, as core does:
// Close ends both directions, CloseWrite only the sending one.
type BareQUICStream struct {
	*quic.Stream
}

var _ core.Stream = BareQUICStream{}

// CloseWrite implements core.Stream.
func (s BareQUICStream) CloseWrite() error { return s.Stream.Close() }

// Close implements core.Stream.
func (s BareQUICStream) Close() error {
	s.Stream.CancelRead(0)
	return s.Stream.Close()
}

// Abort implements core.Stream.
func (s BareQUICStream) Abort(code core.ErrorCode) {
	s.Stream.CancelRead(quic.StreamErrorCode(code))
	s.Stream.CancelWrite(quic.StreamErrorCode(code))
}

// tlsStream gives a *tls.Conn core.Stream's semantics.
type tlsStream struct {
	*tls.Conn
}

var _ core.Stream = tlsStream{}

// CloseWrite implements core.Stream.
func (s tlsStream) CloseWrite() error { return s.Conn.CloseWrite() }

// Abort implements core.Stream: it resets the TCP connection.
func (s tlsStream) Abort(core.ErrorCode) {
	if tc, ok := s.Conn.NetConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = s.Conn.NetConn().Close()
}

// DialBareQUIC connects to a bare QUIC server the way core.Dialer would,
// without core.
func DialBareQUIC(ctx context.Context, key ed25519.PrivateKey, addr string) (*quic.Conn, error) {
	pin, hostport, err := core.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	tlsConf, err := clientTLSConfig(key, pin)
	if err != nil {
		return nil, err
	}
	qc, err := quic.DialAddr(ctx, hostport, tlsConf, clientQUICConfig())
	if err != nil {
		return nil, fmt.Errorf("bench: quic dial %s: %w", hostport, err)
	}
	return qc, nil
}

// DialBareTLS connects to a bare TLS server and returns its one stream.
func DialBareTLS(ctx context.Context, key ed25519.PrivateKey, addr string) (core.Stream, error) {
	pin, hostport, err := core.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	tlsConf, err := clientTLSConfig(key, pin)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, fmt.Errorf("bench: tcp dial %s: %w", hostport, err)
	}
	tc := tls.Client(nc, tlsConf)
	if err := tc.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("bench: tls handshake with %s: %w", hostport, err)
	}
	return tlsStream{tc}, nil
}
