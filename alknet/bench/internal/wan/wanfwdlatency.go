package wan

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
	"github.com/alkdev/alknet/alknet/bench/internal/sshbench"
)

// The forwarding latency benchmark (issue 17 §3): across an emulated
// path, `alknet forward -L` (alknet/fwd, one QUIC stream per forwarded
// connection) against OpenSSH's `ssh -L` (channels over one TCP
// connection). The node and sshd run in namespace B beside a small TCP
// server, the destination; the forwards and the Go client timing them in
// A. Two things are measured on tunnels that are already up:
//
//   - connect: from the local TCP connect to the forward's listener to
//     the first byte of the destination's answer to a 64-byte request
//     (a new forwarded connection: a channel open, a stream);
//   - head-of-line blocking: one connection downloads bulk data through
//     the tunnel while another sends a 64-byte ping every 20 ms and
//     waits for its pong; the pongs' round trips (p50, p99).

// Names of the forwarding latency variants.
const (
	fwdLatencyAlknet    = "alknet forward (fwd)"
	fwdLatencyAlknetSSH = "alknet forward (ssh)"
	fwdLatencyOpenSSH   = "ssh -L"
)

// Goals of issue 17 §3: alknet/fwd's connect to first response byte and
// its p99 ping under a bulk transfer at most half of OpenSSH's.
const (
	fwdConnectGoal = 0.5
	fwdHOLGoal     = 0.5
)

// ForwardLatencyOptions configures [RunForwardLatency].
type ForwardLatencyOptions struct {
	// Connects is the number of timed new connections per variant; zero
	// means 20.
	Connects int
	// Bulk is how long the bulk download runs while pinging; zero means
	// 6 s.
	Bulk time.Duration
	// pingEvery is the ping interval; zero means 20 ms.
	pingEvery time.Duration
	// verify tunes each link's self-check; zero means a 2 s TCP check.
	verify netem.VerifyOptions
	// Progress, if set, is told what is happening.
	Progress func(msg string)
}

func (o *ForwardLatencyOptions) defaults() {
	if o.Connects <= 0 {
		o.Connects = 20
	}
	if o.Bulk <= 0 {
		o.Bulk = 6 * time.Second
	}
	if o.pingEvery <= 0 {
		o.pingEvery = 20 * time.Millisecond
	}
	if o.verify.TCPDuration == 0 {
		o.verify.TCPDuration = 2 * time.Second
	}
}

// forwardLatency is one variant's measurements on one profile.
type forwardLatency struct {
	name string
	// connect are the connect-to-first-byte times, sorted.
	connect []time.Duration
	// idle are ping round trips through the tunnel without the bulk
	// transfer, and Loaded those during it, sorted.
	idle, loaded []time.Duration
	// bulkBytesPerSec is the bulk download's goodput while pinging.
	bulkBytesPerSec float64
	err             error
}

// PathForwardLatency is the benchmark on one link profile.
type PathForwardLatency struct {
	profile  netem.LinkProfile
	verify   netem.VerifyResult
	err      error
	variants []forwardLatency
}

// RunForwardLatency measures each profile in turn: it starts the link,
// verifies it, and runs alknet/fwd, alknet's SSH forwarding and OpenSSH
// (sshd and ssh must be installed) one after the other.
func RunForwardLatency(ctx context.Context, bin string, profiles []netem.LinkProfile, opt ForwardLatencyOptions) ([]PathForwardLatency, error) {
	opt.defaults()
	var out []PathForwardLatency
	var errs []error
	for _, p := range profiles {
		r := PathForwardLatency{profile: p}
		r.err = func() error {
			l, err := netem.StartLink(ctx, p)
			if err != nil {
				return err
			}
			defer l.Close()
			if r.verify, err = l.Verify(ctx, opt.verify); err != nil {
				return err
			}
			if !r.verify.OK() {
				return r.verify.Err()
			}
			r.variants, err = measureForwardLatency(ctx, l, bin, opt)
			return err
		}()
		if r.err != nil {
			errs = append(errs, fmt.Errorf("forward latency %s: %w", p.Name, r.err))
		}
		out = append(out, r)
		if ctx.Err() != nil {
			break
		}
	}
	return out, errors.Join(errs...)
}

// measureForwardLatency starts the rig in l's namespaces and measures
// each variant; a variant's failure is in its result.
func measureForwardLatency(ctx context.Context, l *netem.Link, bin string, opt ForwardLatencyOptions) ([]forwardLatency, error) {
	rig, err := sshbench.StartSSHRigAt(ctx, bin, netem.LinkPlace(l))
	if err != nil {
		return nil, err
	}
	defer rig.Close()
	dest, err := startLatencyServer(l)
	if err != nil {
		return nil, err
	}
	defer dest.close()
	target := dest.addr.String()
	var res []forwardLatency
	measure := func(name string) func(addr string) sshbench.MeasureFunc {
		return func(addr string) sshbench.MeasureFunc {
			return func(ctx context.Context) (float64, error) {
				v := forwardLatency{name: name}
				v.err = v.measure(ctx, l, addr, opt)
				res = append(res, v)
				return 0, nil
			}
		}
	}
	variants := []sshbench.SSHVariant{
		rig.AlknetListener(fwdLatencyAlknet, sshbench.ForwardListening, measure(fwdLatencyAlknet),
			"forward", "--forward-protocol", "fwd", "-L", "127.0.0.1:0:"+target),
		rig.AlknetListener(fwdLatencyAlknetSSH, sshbench.ForwardListening, measure(fwdLatencyAlknetSSH),
			"forward", "--forward-protocol", "ssh", "-L", "127.0.0.1:0:"+target),
		rig.SSHListener(fwdLatencyOpenSSH, "-L", ":"+target, measure(fwdLatencyOpenSSH), rig.ToSSHD(sshbench.AES128GCM)),
	}
	for _, v := range variants {
		if opt.Progress != nil {
			opt.Progress(fmt.Sprintf("forward latency %s: %s", l.Profile().Name, v.Name))
		}
		m, stop, err := v.Start(ctx)
		if err != nil {
			res = append(res, forwardLatency{name: v.Name, err: err})
			continue
		}
		_, _ = m(ctx)
		if err := stop(); err != nil && res[len(res)-1].err == nil {
			res[len(res)-1].err = err
		}
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, nil
}

// Requests of the latency server: the first byte of a connection.
const (
	latencyEcho = 'e' // then 64-byte messages, each echoed
	latencyBulk = 'b' // then zeros until the client goes away
)

// pingSize is the size of a request and of its answer.
const pingSize = 64

// latencyServer is the destination in namespace B.
type latencyServer struct {
	ln   net.Listener
	addr netip.AddrPort
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startLatencyServer(l *netem.Link) (*latencyServer, error) {
	s := &latencyServer{conns: map[net.Conn]struct{}{}}
	err := l.Do(netem.SideB, func() (err error) {
		s.ln, err = net.Listen("tcp", netip.AddrPortFrom(l.Addr(netem.SideB), 0).String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bench: latency server: %w", err)
	}
	s.addr = s.ln.Addr().(*net.TCPAddr).AddrPort()
	s.wg.Go(s.accept)
	return s, nil
}

func (s *latencyServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			serveLatency(c)
		})
	}
}

// serveLatency answers one connection until it ends.
func serveLatency(c net.Conn) {
	var op [1]byte
	if _, err := io.ReadFull(c, op[:]); err != nil {
		return
	}
	switch op[0] {
	case latencyEcho:
		buf := make([]byte, pingSize)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	case latencyBulk:
		_, _ = io.Copy(c, zeroReader{})
	}
}

func (s *latencyServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// latencyTimeout bounds every single exchange through a forward.
const latencyTimeout = 30 * time.Second

// dialA connects to addr from namespace A.
func dialA(l *netem.Link, addr string) (c net.Conn, err error) {
	err = l.Do(netem.SideA, func() error {
		c, err = net.DialTimeout("tcp", addr, latencyTimeout)
		return err
	})
	return c, err
}

// warmUpTime bounds the warm-up connection's tries.
const warmUpTime = 10 * time.Second

// connectOnce opens a forwarded connection through the listener at addr
// and returns the time from the connect to the first byte of the answer
// to the first request.
func connectOnce(l *netem.Link, addr string) (time.Duration, error) {
	var req [1 + pingSize]byte
	req[0] = latencyEcho
	var start time.Time
	var c net.Conn
	err := l.Do(netem.SideA, func() (err error) {
		start = time.Now()
		c, err = net.DialTimeout("tcp", addr, latencyTimeout)
		return err
	})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(latencyTimeout))
	if _, err := c.Write(req[:]); err != nil {
		return 0, err
	}
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		return 0, fmt.Errorf("first byte: %w", err)
	}
	d := time.Since(start)
	rest := make([]byte, pingSize-1)
	if _, err := io.ReadFull(c, rest); err != nil {
		return 0, err
	}
	return d, nil
}

// measure takes all of v's measurements through the forward listening
// on addr (in namespace A).
func (v *forwardLatency) measure(ctx context.Context, l *netem.Link, addr string, opt ForwardLatencyOptions) error {
	// A connection before the timed ones: the tunnel is up and warm. A
	// forwarder that has just said it listens can still refuse for a
	// moment on a loaded machine (seen once with `ssh -L` in CI), so the
	// warm-up tries again for up to warmUpTime; the timed ones do not.
	deadline := time.Now().Add(warmUpTime)
	for {
		_, err := connectOnce(l, addr)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("warm-up: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	for range opt.Connects {
		d, err := connectOnce(l, addr)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		v.connect = append(v.connect, d)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	slices.Sort(v.connect)

	pc, err := dialA(l, addr)
	if err != nil {
		return err
	}
	defer pc.Close()
	_ = pc.SetDeadline(time.Now().Add(opt.Bulk + 2*latencyTimeout))
	if _, err := pc.Write([]byte{latencyEcho}); err != nil {
		return err
	}
	pings := func(until time.Time) ([]time.Duration, error) {
		return pingEvery(pc, opt.pingEvery, until)
	}
	if v.idle, err = pings(time.Now().Add(time.Second)); err != nil {
		return err
	}

	bc, err := dialA(l, addr)
	if err != nil {
		return err
	}
	defer bc.Close()
	if _, err := bc.Write([]byte{latencyBulk}); err != nil {
		return err
	}
	// The download gets a head start of a round trip or two, so that
	// the pings meet a tunnel that is busy.
	var first [1]byte
	_ = bc.SetReadDeadline(time.Now().Add(latencyTimeout))
	if _, err := io.ReadFull(bc, first[:]); err != nil {
		return fmt.Errorf("bulk: %w", err)
	}
	bulkStart := time.Now()
	stopBulk := make(chan struct{})
	var bulkBytes int64
	var bulkErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			_ = bc.SetReadDeadline(time.Now().Add(latencyTimeout))
			n, err := bc.Read(buf)
			bulkBytes += int64(n)
			if err != nil {
				select {
				case <-stopBulk:
				default:
					bulkErr = fmt.Errorf("bulk: %w", err)
				}
				return
			}
		}
	})
	v.loaded, err = pings(bulkStart.Add(opt.Bulk))
	elapsed := time.Since(bulkStart)
	close(stopBulk)
	_ = bc.Close()
	wg.Wait()
	if err != nil {
		return err
	}
	if bulkErr != nil {
		return bulkErr
	}
	v.bulkBytesPerSec = float64(bulkBytes) / elapsed.Seconds()
	return nil
}

// WriteForwardLatencyMarkdown prints a table per profile and, last, the
// goal lines: `goal fwd-connect-first-byte <profile> ratio <alknet/fwd
// median / ssh -L median> target <=0.5 met|missed` and `goal
// fwd-hol-p99 <profile> ratio <p99 / p99> target <=0.5 met|missed`.
func WriteForwardLatencyMarkdown(w io.Writer, results []PathForwardLatency, err error) {
	fmt.Fprintf(w, "## Real paths: forwarding latency\n\n")
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "`alknet serve`, sshd and a small TCP server (the destination) in namespace B; the forwards "+
		"(already up) and the timing client in A. *connect*: local TCP connect to the first byte of the answer to a "+
		"64-byte request, median (p90) of the new connections. *ping*: 64-byte round trips through the tunnel every 20 ms, "+
		"idle and while another forwarded connection downloads as fast as it can (*bulk*).\n\n")
	fmt.Fprintf(w, "| profile | forward | connect | idle ping p50 | loaded ping p50 | loaded ping p99 | loaded max | pings | bulk Mbit/s |\n")
	fmt.Fprintf(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|\n")
	var goals []string
	for _, r := range results {
		if r.err != nil && len(r.variants) == 0 {
			fmt.Fprintf(w, "| %s | – | failed: %v | | | | | | |\n", r.profile.Name, r.err)
			continue
		}
		by := map[string]*forwardLatency{}
		for i := range r.variants {
			v := &r.variants[i]
			by[v.name] = v
			if v.err != nil {
				fmt.Fprintf(w, "| %s | %s | failed: %v | | | | | | |\n", r.profile.Name, v.name, v.err)
				continue
			}
			fmt.Fprintf(w, "| %s | %s | %s (%s) | %s | %s | %s | %s | %d | %.1f |\n", r.profile.Name, v.name,
				ms(harness.Percentile(v.connect, 50)), ms(harness.Percentile(v.connect, 90)), ms(harness.Percentile(v.idle, 50)),
				ms(harness.Percentile(v.loaded, 50)), ms(harness.Percentile(v.loaded, 99)), ms(harness.Percentile(v.loaded, 100)),
				len(v.loaded), v.bulkBytesPerSec*8/1e6)
		}
		a, o := by[fwdLatencyAlknet], by[fwdLatencyOpenSSH]
		if a == nil || o == nil || a.err != nil || o.err != nil {
			continue
		}
		var b strings.Builder
		if c := harness.Percentile(o.connect, 50); c > 0 {
			harness.WriteGoal(&b, "fwd-connect-first-byte", r.profile.Name, float64(harness.Percentile(a.connect, 50))/float64(c), "<=", fwdConnectGoal)
		}
		if p := harness.Percentile(o.loaded, 99); p > 0 {
			harness.WriteGoal(&b, "fwd-hol-p99", r.profile.Name, float64(harness.Percentile(a.loaded, 99))/float64(p), "<=", fwdHOLGoal)
		}
		goals = append(goals, b.String())
	}
	fmt.Fprintln(w)
	for _, g := range goals {
		fmt.Fprint(w, g)
	}
}

// pingEvery sends a 64-byte ping on c every interval until the time is
// up, whether or not the earlier ones were answered (a ping that waits
// for the one before would hide the delay), and returns the round trips
// of all, sorted.
func pingEvery(c net.Conn, interval time.Duration, until time.Time) ([]time.Duration, error) {
	var (
		mu   sync.Mutex
		sent []time.Time
	)
	rerr := make(chan error, 1)
	var rtts []time.Duration
	go func() {
		var resp [pingSize]byte
		for seq := 0; ; seq++ {
			if _, err := io.ReadFull(c, resp[:]); err != nil {
				rerr <- fmt.Errorf("ping %d: %w", seq, err)
				return
			}
			now := time.Now()
			mu.Lock()
			n := len(sent)
			var at time.Time
			if seq < n {
				at = sent[seq]
			}
			mu.Unlock()
			if seq >= n || binary.BigEndian.Uint64(resp[:]) != uint64(seq) {
				rerr <- fmt.Errorf("ping %d: wrong answer", seq)
				return
			}
			rtts = append(rtts, now.Sub(at))
			if n == seq+1 && !now.Before(until) {
				rerr <- nil
				return
			}
		}
	}()
	var req [pingSize]byte
	for next := time.Now(); next.Before(until); next = next.Add(interval) {
		time.Sleep(time.Until(next))
		mu.Lock()
		binary.BigEndian.PutUint64(req[:], uint64(len(sent)))
		sent = append(sent, time.Now())
		mu.Unlock()
		if _, err := c.Write(req[:]); err != nil {
			return nil, fmt.Errorf("ping: %w", err)
		}
	}
	if err := <-rerr; err != nil {
		return nil, err
	}
	slices.Sort(rtts)
	return rtts, nil
}
