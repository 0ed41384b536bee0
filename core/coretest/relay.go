package coretest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Relay forwards UDP datagrams (and from [StartRelayTCP] TCP connections)
// between clients and a target on loopback, as a router on the path
// would: each client gets a socket of its own towards the target, and
// what the target sends back is held for Delay, so
// a client's first flight (its ClientHello and any 0-RTT data) reaches the
// target well before the client can finish its handshake. It records each
// client's first flight, the datagrams it sent before anything came back,
// so a test can send them again from another socket ([Relay.Replay]), as an
// attacker who recorded them would.
type Relay struct {
	// Addr is the relay's address ("host:port"), to dial instead of the
	// target's.
	Addr string

	target *net.UDPAddr
	delay  time.Duration
	ln     *net.UDPConn
	tl     net.Listener // nil: no TCP

	drop      atomic.Bool
	datagrams atomic.Int64
	tcpConns  atomic.Int64

	mu      sync.Mutex
	clients map[string]*relayClient
	tcp     map[net.Conn]bool // both ends of the TCP connections passed on
	flights [][][]byte        // each client's first flight, in the order they came
	closed  bool
	wg      sync.WaitGroup
}

type relayClient struct {
	up       *net.UDPConn
	flight   int // index into flights
	answered bool
}

// StartRelay relays to target ("host:port"), holding the target's datagrams
// back by delay, until the test ends. It relays no TCP: TCP dials of its
// address are refused.
func StartRelay(t testing.TB, target string, delay time.Duration) *Relay {
	t.Helper()
	ln, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return startRelay(t, target, delay, ln, nil)
}

// StartRelayTCP is [StartRelay] that also passes TCP connections to its
// address on to target, as they are: a path to test what a client does
// when UDP stops getting through ([Relay.DropUDP]) while TCP still does.
func StartRelayTCP(t testing.TB, target string, delay time.Duration) *Relay {
	t.Helper()
	for tries := 0; ; tries++ { // the TCP port's UDP twin may be taken
		tl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(tl.Addr().(*net.TCPAddr).AddrPort()))
		if err == nil {
			return startRelay(t, target, delay, ln, tl)
		}
		tl.Close()
		if tries == 10 {
			t.Fatal(err)
		}
	}
}

func startRelay(t testing.TB, target string, delay time.Duration, ln *net.UDPConn, tl net.Listener) *Relay {
	t.Helper()
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{Addr: ln.LocalAddr().String(), target: taddr, delay: delay, ln: ln, tl: tl, clients: make(map[string]*relayClient)}
	r.wg.Add(1)
	go r.serve()
	if tl != nil {
		r.wg.Add(1)
		go r.serveTCP()
	}
	t.Cleanup(r.close)
	return r
}

func (r *Relay) close() {
	r.mu.Lock()
	r.closed = true
	for _, c := range r.clients {
		_ = c.up.Close()
	}
	for c := range r.tcp {
		_ = c.Close()
	}
	r.mu.Unlock()
	_ = r.ln.Close()
	if r.tl != nil {
		_ = r.tl.Close()
	}
	r.wg.Wait()
}

// DropUDP makes the relay drop every datagram that clients send from now
// on (drop true), as a network that stops letting UDP through, or pass
// them again (false). TCP is not affected.
func (r *Relay) DropUDP(drop bool) { r.drop.Store(drop) }

// Datagrams returns how many datagrams clients have sent the relay, those
// dropped included.
func (r *Relay) Datagrams() int64 { return r.datagrams.Load() }

// Quiet waits until no datagram has come from a client for 300 ms (the
// last of a closed connection's, say), and returns [Relay.Datagrams].
func (r *Relay) Quiet() int64 {
	sent := r.Datagrams()
	for settled := time.Now(); time.Since(settled) < 300*time.Millisecond; time.Sleep(20 * time.Millisecond) {
		if now := r.Datagrams(); now != sent {
			sent, settled = now, time.Now()
		}
	}
	return sent
}

// serveTCP passes each TCP connection to the target.
func (r *Relay) serveTCP() {
	defer r.wg.Done()
	for {
		c, err := r.tl.Accept()
		if err != nil {
			return
		}
		r.tcpConns.Add(1)
		if !r.track(c) {
			return
		}
		go func() { // counted by c's track
			defer r.untrack(c)
			up, err := net.Dial("tcp", r.tcpTarget())
			if err != nil || !r.track(up) {
				return
			}
			go func() { // counted by up's track
				defer r.untrack(up)
				_, _ = io.Copy(up, c)
				_ = up.(*net.TCPConn).CloseWrite()
				_, _ = io.Copy(io.Discard, up) // until the target is done
			}()
			_, _ = io.Copy(c, up)
		}()
	}
}

// track records a TCP connection for close to end, and a goroutine for it
// to wait for; it closes c and reports false once the relay is closed.
func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		_ = c.Close()
		return false
	}
	if r.tcp == nil {
		r.tcp = make(map[net.Conn]bool)
	}
	r.tcp[c] = true
	r.wg.Add(1)
	return true
}

// untrack closes c and forgets it, and ends its goroutine's count.
func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.tcp, c)
	r.mu.Unlock()
	_ = c.Close()
	r.wg.Done()
}

func (r *Relay) tcpTarget() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target.String()
}

// TCPConns returns how many TCP connections clients have made to the
// relay.
func (r *Relay) TCPConns() int64 { return r.tcpConns.Load() }

// serve reads the clients' datagrams and sends each on its client's
// socket to the target.
func (r *Relay) serve() {
	defer r.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := r.ln.ReadFromUDP(buf)
		if err != nil {
			return
		}
		r.datagrams.Add(1)
		if r.drop.Load() {
			continue
		}
		c, err := r.client(from)
		if err != nil {
			return
		}
		p := append([]byte(nil), buf[:n]...)
		r.mu.Lock()
		if !c.answered {
			r.flights[c.flight] = append(r.flights[c.flight], p)
		}
		r.mu.Unlock()
		_, _ = c.up.Write(p)
	}
}

// client returns from's client, starting it on its first datagram.
func (r *Relay) client(from *net.UDPAddr) (*relayClient, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, net.ErrClosed
	}
	if c, ok := r.clients[from.String()]; ok {
		return c, nil
	}
	up, err := net.DialUDP("udp", nil, r.target)
	if err != nil {
		return nil, err
	}
	c := &relayClient{up: up, flight: len(r.flights)}
	r.flights = append(r.flights, nil)
	r.clients[from.String()] = c
	r.wg.Add(1)
	go r.back(c, from)
	return c, nil
}

// delayed is a datagram the relay holds until due.
type delayed struct {
	p   []byte
	due time.Time
}

// back sends what the target answers c to the client, each datagram
// delay later, in the order they came.
func (r *Relay) back(c *relayClient, to *net.UDPAddr) {
	defer r.wg.Done()
	queue := make(chan delayed, 1024)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for d := range queue {
			time.Sleep(time.Until(d.due))
			r.mu.Lock()
			c.answered = true // the client's first flight ends here
			r.mu.Unlock()
			_, _ = r.ln.WriteToUDP(d.p, to)
		}
	}()
	defer close(queue)
	buf := make([]byte, 64<<10)
	for {
		n, err := c.up.Read(buf)
		if err != nil {
			return
		}
		select {
		case queue <- delayed{append([]byte(nil), buf[:n]...), time.Now().Add(r.delay)}:
		default: // a full queue drops, as a router's does
		}
	}
}

// SetTarget sends the clients that come from now on to target instead.
func (r *Relay) SetTarget(t testing.TB, target string) {
	t.Helper()
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.target = taddr
	r.mu.Unlock()
}

// Flights returns how many clients the relay has seen.
func (r *Relay) Flights() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.flights)
}

// Replay sends the i-th client's first flight to the target again, from a
// socket of its own, and reads (and drops) what the target answers until
// the test's cleanup.
func (r *Relay) Replay(t testing.TB, i int) {
	t.Helper()
	r.mu.Lock()
	if i >= len(r.flights) {
		r.mu.Unlock()
		t.Fatalf("relay: no flight %d (have %d)", i, len(r.flights))
	}
	flight := r.flights[i]
	target := r.target
	r.mu.Unlock()
	if len(flight) == 0 {
		t.Fatalf("relay: flight %d is empty", i)
	}
	up, err := net.DialUDP("udp", nil, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = up.Close() })
	for _, p := range flight {
		if _, err := up.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := up.Read(buf); err != nil {
				return
			}
		}
	}()
}
