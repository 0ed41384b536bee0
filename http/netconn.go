package http

import (
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/alkdev/alknet/core"
)

// streamConn is the one stream of an h2 or http/1.1 connection as a
// net.Conn, for net/http. Its closed channel tells the core handler that
// net/http is done with it.
type streamConn struct {
	core.Stream
	conn core.Conn
	// in and out count the bytes of the connection's ALPN, found once:
	// net/http reads and writes several times a request.
	in, out prometheus.Counter

	once   sync.Once
	closed chan struct{}
}

func newStreamConn(st core.Stream, conn core.Conn, m *metrics) *streamConn {
	alpn := conn.ALPN()
	return &streamConn{Stream: st, conn: conn, in: m.bytesIn.WithLabelValues(alpn), out: m.bytesOut.WithLabelValues(alpn), closed: make(chan struct{})}
}

func (c *streamConn) Read(p []byte) (int, error) {
	n, err := c.Stream.Read(p)
	c.in.Add(float64(n))
	return n, err
}

func (c *streamConn) Write(p []byte) (int, error) {
	n, err := c.Stream.Write(p)
	c.out.Add(float64(n))
	return n, err
}

// Close closes the stream once and signals the handler.
func (c *streamConn) Close() error {
	var err error
	c.once.Do(func() {
		err = c.Stream.Close()
		close(c.closed)
	})
	return err
}

// LocalAddr is unknown on a core stream.
func (c *streamConn) LocalAddr() net.Addr { return streamAddr{} }

// RemoteAddr is the client's address.
func (c *streamConn) RemoteAddr() net.Addr {
	if c.conn.Peer().RemoteAddr != nil {
		return c.conn.Peer().RemoteAddr
	}
	return streamAddr{}
}

func (c *streamConn) SetDeadline(t time.Time) error      { return c.Stream.SetDeadline(t) }
func (c *streamConn) SetReadDeadline(t time.Time) error  { return c.Stream.SetReadDeadline(t) }
func (c *streamConn) SetWriteDeadline(t time.Time) error { return c.Stream.SetWriteDeadline(t) }

// streamAddr stands in for an address a stream does not have.
type streamAddr struct{}

func (streamAddr) Network() string { return "alknet" }
func (streamAddr) String() string  { return "-" }

// connListener hands the connections core routes to this server to
// net/http's accept loop.
type connListener struct {
	ch   chan net.Conn
	mu   sync.Mutex
	done chan struct{}
	shut bool
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to the accept loop; false once the listener is closed.
func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.shut {
		l.shut = true
		close(l.done)
	}
	return nil
}

func (l *connListener) Addr() net.Addr { return streamAddr{} }
