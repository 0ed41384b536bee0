package dnsbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/dns"
)

// dnsWork is what one load run asks of the Go generator.
type dnsWork struct {
	queries  []dnsQuery
	duration time.Duration
	// conns is the number of connections (UDP: sockets per inflight slot,
	// see udpLoad); inflight the queries outstanding on each.
	conns, inflight int
	// timeout bounds one query; an unanswered UDP query counts as lost.
	timeout time.Duration
}

// dnsTally is what one worker of the Go generator measured.
type dnsTally struct {
	latencies []time.Duration
	lost      int
}

// errBadAnswer marks an answer that is not the expected one.
var errBadAnswer = errors.New("bench: dns: unexpected answer")

// checkAnswer checks a response to q sent with id: the ID, the QR bit and
// the expected RCODE.
func checkAnswer(resp []byte, q *dnsQuery, id uint16) error {
	if len(resp) < 12 {
		return fmt.Errorf("%w to %s: %d bytes", errBadAnswer, q.name, len(resp))
	}
	if got := binary.BigEndian.Uint16(resp); got != id {
		return fmt.Errorf("%w to %s: id %d, want %d", errBadAnswer, q.name, got, id)
	}
	if resp[2]&0x80 == 0 {
		return fmt.Errorf("%w to %s: not a response", errBadAnswer, q.name)
	}
	if rc := int(resp[3] & 0x0f); rc != q.rcode {
		return fmt.Errorf("%w to %s: rcode %d, want %d", errBadAnswer, q.name, rc, q.rcode)
	}
	return nil
}

// runDNSWorkers runs n workers until w.duration has passed, each calling
// query with its index and a query counter until the clock stops, and pools
// what they measured. The first error ends the run.
func runDNSWorkers(ctx context.Context, w dnsWork, n int, query func(ctx context.Context, worker, i int, t *dnsTally) error) (DNSResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tallies := make([]dnsTally, n)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(w.duration)
	for k := range n {
		wg.Go(func() {
			t := &tallies[k]
			for i := k; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				if err := query(ctx, k, i, t); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	res := DNSResult{elapsed: time.Since(start)}
	var lats [][]time.Duration
	for _, t := range tallies {
		lats = append(lats, t.latencies)
		res.Lost += t.lost
	}
	all := slices.Concat(lats...)
	res.queries = len(all)
	res.P50, res.P99 = harness.Percentile(all, 50), harness.Percentile(all, 99)
	return res, context.Cause(ctx)
}

// udpLoad sends w's queries over UDP to addr from conns×inflight workers,
// each with its own socket and one query outstanding.
func udpLoad(ctx context.Context, addr string, w dnsWork) (DNSResult, error) {
	n := w.conns * w.inflight
	socks := make([]*net.UDPConn, 0, n)
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return DNSResult{}, err
	}
	for range n {
		s, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return DNSResult{}, fmt.Errorf("bench: dns udp: %w", err)
		}
		socks = append(socks, s)
	}
	return runDNSWorkers(ctx, w, n, func(ctx context.Context, k, i int, t *dnsTally) error {
		s := socks[k]
		q := &w.queries[i%len(w.queries)]
		id := uint16(i)
		msg := binary.BigEndian.AppendUint16(nil, id)
		msg = append(msg, q.wire[2:]...)
		var buf [1500]byte
		start := time.Now()
		if _, err := s.Write(msg); err != nil {
			return fmt.Errorf("bench: dns udp: %w", err)
		}
		_ = s.SetReadDeadline(start.Add(w.timeout))
		for {
			m, err := s.Read(buf[:])
			if ne := (net.Error)(nil); errors.As(err, &ne) && ne.Timeout() {
				t.lost++
				return nil
			}
			if err != nil {
				return fmt.Errorf("bench: dns udp: %w", err)
			}
			if m >= 2 && binary.BigEndian.Uint16(buf[:]) != id {
				continue // a late answer to a query counted as lost
			}
			if err := checkAnswer(buf[:m], q, id); err != nil {
				return err
			}
			t.latencies = append(t.latencies, time.Since(start))
			return nil
		}
	})
}

// dialDNS opens w.conns connections to node (anonymous, pinned to its
// NodeID) over network for alpn.
func dialDNS(ctx context.Context, node string, network core.Network, alpn string, n int) ([]core.Conn, error) {
	d := &core.Dialer{Network: network, Logger: harness.Discard()}
	conns := make([]core.Conn, 0, n)
	for range n {
		c, err := d.Dial(ctx, node, alpn)
		if err != nil {
			closeConns(conns)
			return nil, fmt.Errorf("bench: dns dial %s: %w", alpn, err)
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeConns(conns []core.Conn) {
	for _, c := range conns {
		_ = c.CloseWithError(core.CodeNoError, "")
	}
}

// doqLoad sends w's queries over DNS over QUIC (RFC 9250) to node: w.conns
// QUIC connections, w.inflight workers on each, each worker opening one
// stream per query (query, FIN, answer).
func doqLoad(ctx context.Context, node string, w dnsWork) (DNSResult, error) {
	conns, err := dialDNS(ctx, node, core.NetworkQUIC, dns.ALPNDoQ, w.conns)
	if err != nil {
		return DNSResult{}, err
	}
	defer closeConns(conns)
	frames := make([][]byte, len(w.queries))
	for i, q := range w.queries {
		frames[i] = binary.BigEndian.AppendUint16(nil, uint16(len(q.wire)))
		frames[i] = append(frames[i], q.wire...)
	}
	return runDNSWorkers(ctx, w, w.conns*w.inflight, func(ctx context.Context, k, i int, t *dnsTally) error {
		q := &w.queries[i%len(w.queries)]
		start := time.Now()
		st, err := conns[k%len(conns)].OpenStream(ctx)
		if err != nil {
			return fmt.Errorf("bench: doq: open stream: %w", err)
		}
		defer st.Close()
		_ = st.SetDeadline(start.Add(w.timeout))
		if _, err := st.Write(frames[i%len(frames)]); err != nil {
			return fmt.Errorf("bench: doq: write: %w", err)
		}
		if err := st.CloseWrite(); err != nil {
			return fmt.Errorf("bench: doq: %w", err)
		}
		resp, err := readDNSFrame(st)
		if err != nil {
			return fmt.Errorf("bench: doq: %w", err)
		}
		if err := checkAnswer(resp, q, 0); err != nil {
			return err
		}
		t.latencies = append(t.latencies, time.Since(start))
		return nil
	})
}

// readDNSFrame reads one 2-byte length-prefixed DNS message.
func readDNSFrame(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(n[:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// dotLoad sends w's queries over DNS over TLS (RFC 7858) to node: w.conns
// TLS connections, w.inflight workers pipelining on each, one query
// outstanding per worker (the worker's index is the message ID); a reader
// per connection hands each answer to its worker.
func dotLoad(ctx context.Context, node string, w dnsWork) (DNSResult, error) {
	conns, err := dialDNS(ctx, node, core.NetworkTCP, dns.ALPNDoT, w.conns)
	if err != nil {
		return DNSResult{}, err
	}
	defer closeConns(conns)
	pipes := make([]*dotPipe, len(conns))
	var readers sync.WaitGroup
	for i, c := range conns {
		st, err := c.OpenStream(ctx)
		if err != nil {
			return DNSResult{}, fmt.Errorf("bench: dot: %w", err)
		}
		p := &dotPipe{st: st, answers: make([]chan []byte, w.inflight)}
		for j := range p.answers {
			p.answers[j] = make(chan []byte, 1)
		}
		pipes[i] = p
		readers.Go(p.read)
	}
	defer func() {
		for _, p := range pipes {
			p.st.Abort(core.CodeNoError)
		}
		readers.Wait()
	}()
	return runDNSWorkers(ctx, w, w.conns*w.inflight, func(ctx context.Context, k, i int, t *dnsTally) error {
		p := pipes[k%len(pipes)]
		id := uint16(k / len(pipes))
		q := &w.queries[i%len(w.queries)]
		frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(q.wire)), uint16(len(q.wire)))
		frame = binary.BigEndian.AppendUint16(frame, id)
		frame = append(frame, q.wire[2:]...)
		start := time.Now()
		if err := p.write(frame, start.Add(w.timeout)); err != nil {
			return fmt.Errorf("bench: dot: write: %w", err)
		}
		timer := time.NewTimer(w.timeout)
		defer timer.Stop()
		select {
		case resp, ok := <-p.answers[id]:
			if !ok {
				return fmt.Errorf("bench: dot: connection ended: %w", p.err)
			}
			if err := checkAnswer(resp, q, id); err != nil {
				return err
			}
		case <-timer.C:
			return fmt.Errorf("bench: dot: no answer in %v", w.timeout)
		case <-ctx.Done():
			return nil
		}
		t.latencies = append(t.latencies, time.Since(start))
		return nil
	})
}

// dotPipe is one DoT connection shared by pipelining workers.
type dotPipe struct {
	st      core.Stream
	wmu     sync.Mutex
	answers []chan []byte // by message ID; closed when the reader ends
	err     error         // why the reader ended; read after a closed answer channel
}

// write sends one frame, whole, before deadline.
func (p *dotPipe) write(frame []byte, deadline time.Time) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.st.SetWriteDeadline(deadline)
	_, err := p.st.Write(frame)
	return err
}

// read hands each answer to the worker whose ID it carries until the
// stream ends.
func (p *dotPipe) read() {
	defer func() {
		for _, c := range p.answers {
			close(c)
		}
	}()
	for {
		resp, err := readDNSFrame(p.st)
		if err != nil {
			p.err = err
			return
		}
		if len(resp) < 2 || int(binary.BigEndian.Uint16(resp)) >= len(p.answers) {
			p.err = fmt.Errorf("%w: message ID out of range", errBadAnswer)
			return
		}
		p.answers[binary.BigEndian.Uint16(resp)] <- resp
	}
}
