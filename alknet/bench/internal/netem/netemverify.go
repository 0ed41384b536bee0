package netem

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// errLinkBottleneck is wrapped by [VerifyResult.Err] when the emulator
// did not deliver its profile: the measurements over it would measure
// the emulator, so the profile is to be skipped.
var errLinkBottleneck = errors.New("the link emulator is the bottleneck")

// The bounds a link must meet before its profile counts (issue 17 §1).
const (
	// VerifyRTTTolerance is how far the measured RTT may be from the
	// profile's.
	VerifyRTTTolerance = time.Millisecond
	// VerifyRateFraction is the fraction of the rate direct TCP must
	// reach.
	VerifyRateFraction = 0.85
)

// VerifyOptions tunes [Link.Verify]; zero fields take the defaults.
type VerifyOptions struct {
	// probes is the number of RTT probes, sent 10 ms apart; default 30.
	probes int
	// TCPDuration is the length of the TCP transfer; default 4s.
	TCPDuration time.Duration
	// lossPackets is the number of datagrams sent to measure the loss
	// when the profile has any; default 20000, 50000 with a
	// Gilbert-Elliott model (its losses come in bursts, so it takes
	// more packets to see its mean).
	lossPackets int
}

// VerifyResult is what [Link.Verify] measured.
type VerifyResult struct {
	profile LinkProfile
	// RTT is the median of the answered probes; RTTAnswered of RTTProbes
	// came back.
	RTT                    time.Duration
	rttProbes, rttAnswered int
	// TCPBps is the goodput, in bits per second, of one TCP connection
	// from A to B with the loss models suspended, after its warm-up.
	TCPBps float64
	// Loss is the fraction of LossSent datagrams from A to B that did not
	// arrive; both are 0 if the profile has no loss.
	Loss     float64
	LossSent int
	// stats are the emulator's counters at the end.
	stats LinkStats
	// Problems lists each way the emulator missed its profile; none
	// means the profile counts.
	Problems []string
}

// OK reports whether the emulator delivered its profile.
func (r VerifyResult) OK() bool { return len(r.Problems) == 0 }

// Err is nil if r is OK, else an error wrapping [errLinkBottleneck] that
// lists the problems.
func (r VerifyResult) Err() error {
	if r.OK() {
		return nil
	}
	return fmt.Errorf("profile %s: %w: %s", r.profile.Name, errLinkBottleneck, JoinProblems(r.Problems))
}

// RateRatio is TCPBps over the profile's rate (0 without a rate).
func (r VerifyResult) RateRatio() float64 {
	if r.profile.RateBps == 0 {
		return 0
	}
	return r.TCPBps / float64(r.profile.RateBps)
}

func JoinProblems(p []string) string {
	s := ""
	for i, x := range p {
		if i > 0 {
			s += "; "
		}
		s += x
	}
	return s
}

// Verify proves the link delivers its profile: the RTT of pings is
// within [VerifyRTTTolerance] of the profile's, one TCP connection from A
// to B (loss suspended) reaches [VerifyRateFraction] of the rate, the
// measured loss is near the profile's, and the emulator never ran out of
// buffers. A miss is reported in the result (see [VerifyResult.Err]), not
// as an error; the error is for a measurement that could not run.
func (l *Link) Verify(ctx context.Context, opts VerifyOptions) (VerifyResult, error) {
	p := l.Profile()
	if opts.probes <= 0 {
		opts.probes = 30
	}
	if opts.TCPDuration <= 0 {
		opts.TCPDuration = 4 * time.Second
	}
	if opts.lossPackets <= 0 {
		opts.lossPackets = 20000
		if p.GE != nil {
			opts.lossPackets = 50000
		}
	}
	r := VerifyResult{profile: p, rttProbes: opts.probes}
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }

	rtts, err := l.measureRTT(ctx, opts.probes)
	if err != nil {
		return r, err
	}
	r.rttAnswered = len(rtts)
	if len(rtts) < (opts.probes+1)/2 {
		problem("%d of %d RTT probes answered", len(rtts), opts.probes)
	} else {
		r.RTT = harness.Percentile(rtts, 50)
		if d := r.RTT - p.RTT; d > VerifyRTTTolerance || d < -VerifyRTTTolerance {
			problem("RTT %v, want %v ±%v", r.RTT.Round(10*time.Microsecond), p.RTT, VerifyRTTTolerance)
		}
	}

	if want := p.MeanLoss(); want > 0 {
		sent, got, err := l.measureLoss(ctx, opts.lossPackets)
		if err != nil {
			return r, err
		}
		r.LossSent, r.Loss = sent, 1-float64(got)/float64(sent)
		if tol := lossTolerance(p, sent); math.Abs(r.Loss-want) > tol {
			problem("loss %.3g%%, want %.3g%% ±%.2g%%", 100*r.Loss, 100*want, 100*tol)
		}
	}

	restore := l.suspendLoss()
	r.TCPBps, err = l.MeasureTCP(ctx, SideA, opts.TCPDuration)
	restore()
	if err != nil {
		return r, err
	}
	if p.RateBps > 0 && r.TCPBps < VerifyRateFraction*float64(p.RateBps) {
		problem("direct TCP %.1f Mbit/s, want >= %.0f%% of %.0f Mbit/s", r.TCPBps/1e6, 100*VerifyRateFraction, float64(p.RateBps)/1e6)
	}
	r.stats = l.Stats()
	if o := r.stats.AToB.Overflow + r.stats.BToA.Overflow; o > 0 {
		problem("the emulator ran out of buffers for %d packets", o)
	}
	if err := l.err(); err != nil {
		return r, err
	}
	return r, nil
}

// lossTolerance is how far from p's mean loss a measurement over sent
// packets may be: four standard deviations of the binomial spread (and
// 10 %) for independent losses, half the mean for bursts, whose spread
// is wider (about a fifth of the mean over 50000 packets of the bursty
// profile).
func lossTolerance(p LinkProfile, sent int) float64 {
	want := p.MeanLoss()
	if p.GE != nil {
		return 0.5 * want
	}
	return 4*math.Sqrt(want*(1-want)/float64(sent)) + 0.1*want
}

// measureRTT pings B from A: probes ICMP echo requests, 10 ms apart,
// answered by B's kernel (no program on B's side whose scheduling would
// count). It returns the round-trip times of those answered.
func (l *Link) measureRTT(ctx context.Context, probes int) ([]time.Duration, error) {
	var c *icmp.PacketConn
	if err := l.Do(SideA, func() (err error) {
		c, err = icmp.ListenPacket("ip4:icmp", l.Addr(SideA).String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("rtt: %w", err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	defer wg.Wait()

	const id = 0xa1e // private namespaces: no other pinger to tell apart
	start := time.Now()
	rtts := make([]time.Duration, probes)
	wg.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			now := time.Since(start)
			m, err := icmp.ParseMessage(1, buf[:n]) // 1: ICMP for IPv4
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			echo, ok := m.Body.(*icmp.Echo)
			if !ok || echo.ID != id || len(echo.Data) != 8 || echo.Seq >= probes {
				continue
			}
			rtts[echo.Seq] = now - time.Duration(binary.BigEndian.Uint64(echo.Data))
		}
	})
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	to := &net.IPAddr{IP: l.Addr(SideB).AsSlice()}
	for i := range probes {
		data := binary.BigEndian.AppendUint64(nil, uint64(time.Since(start)))
		msg, err := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: i, Data: data}}).Marshal(nil)
		if err != nil {
			return nil, fmt.Errorf("rtt: %w", err)
		}
		if _, err := c.WriteTo(msg, to); err != nil {
			return nil, fmt.Errorf("rtt: %w", err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	// Wait for the last answers: twice the RTT, and some.
	if err := harness.Sleep(ctx, 2*l.Profile().RTT+200*time.Millisecond); err != nil {
		return nil, err
	}
	c.Close()
	wg.Wait()
	return slices.DeleteFunc(rtts, func(d time.Duration) bool { return d == 0 }), nil
}

// measureLoss sends packets small UDP datagrams from A to B, paced well
// under the rate, and returns how many entered the link (A's device
// transmitted) and how many left it (B's device received), as the two
// namespaces' kernels count them: a receiver too slow for its socket
// buffer does not count as loss, and the emulator's own counters are
// not trusted.
func (l *Link) measureLoss(ctx context.Context, packets int) (sent, received int, err error) {
	var sink *net.UDPConn
	if err := l.Do(SideB, func() (err error) {
		sink, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.Addr(SideB), 0)))
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("loss: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer sink.Close()
	wg.Go(func() {
		buf := make([]byte, 128)
		for {
			if _, err := sink.Read(buf); err != nil {
				return
			}
		}
	})
	var c *net.UDPConn
	if err := l.Do(SideA, func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(sink.LocalAddr().(*net.UDPAddr).AddrPort()))
		return err
	}); err != nil {
		return 0, 0, fmt.Errorf("loss: %w", err)
	}
	defer c.Close()
	_, tx0, err := l.devicePackets(SideA)
	if err != nil {
		return 0, 0, fmt.Errorf("loss: %w", err)
	}
	rx0, _, err := l.devicePackets(SideB)
	if err != nil {
		return 0, 0, fmt.Errorf("loss: %w", err)
	}
	// 64 bytes of payload are 92 on the wire; send at most half the rate,
	// in bursts each millisecond.
	const size = 92
	burst := 50
	if rate := l.Profile().RateBps; rate > 0 {
		burst = max(1, min(burst, int(float64(rate)/2/8/1000/size)))
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	msg := make([]byte, size-28)
	for n := 0; n < packets; {
		for range min(burst, packets-n) {
			if _, err := c.Write(msg); err != nil {
				return 0, 0, fmt.Errorf("loss: %w", err)
			}
			n++
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	if err := harness.Sleep(ctx, l.Profile().RTT+300*time.Millisecond); err != nil {
		return 0, 0, err
	}
	_, tx1, err := l.devicePackets(SideA)
	if err != nil {
		return 0, 0, fmt.Errorf("loss: %w", err)
	}
	rx1, _, err := l.devicePackets(SideB)
	if err != nil {
		return 0, 0, fmt.Errorf("loss: %w", err)
	}
	return int(tx1 - tx0), int(rx1 - rx0), nil
}

// MeasureTCP sends over one TCP connection from side from to the other
// side for d and returns the goodput in bits per second, after a warm-up
// of ten RTTs (at least 0.5 s, at most d/2) that slow start may take.
// The goodput is what the receiving kernel got in order (TCP_INFO), so a
// slow reader does not bend it. The loss models stay as they are.
func (l *Link) MeasureTCP(ctx context.Context, from Side, d time.Duration) (float64, error) {
	if !from.valid() {
		return 0, fmt.Errorf("tcp: bad side %d", from)
	}
	to := 1 - from
	var ln *net.TCPListener
	if err := l.Do(to, func() (err error) {
		ln, err = net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.Addr(to), 0)))
		return err
	}); err != nil {
		return 0, fmt.Errorf("tcp: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	recvErr := make(chan error, 1)
	accepted := make(chan net.Conn, 1)
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			recvErr <- err
			return
		}
		accepted <- c
		buf := make([]byte, 256<<10)
		for {
			_, err := c.Read(buf)
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				recvErr <- err
				return
			}
		}
	})
	// Closing the receiving end too resets the connection instead of
	// waiting for the sender's buffer to drain through the link.
	var rc net.Conn
	defer func() {
		if rc != nil {
			rc.Close()
		}
	}()
	var c net.Conn
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.Do(from, func() (err error) {
		c, err = (&net.Dialer{}).DialContext(dctx, "tcp4", ln.Addr().String())
		return err
	}); err != nil {
		return 0, fmt.Errorf("tcp: %w", err)
	}
	defer c.Close()
	wg.Go(func() {
		buf := make([]byte, 256<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	select {
	case rc = <-accepted:
	case err := <-recvErr:
		return 0, fmt.Errorf("tcp: accept: %w", err)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	start := time.Now()
	warm := min(max(10*l.Profile().RTT, 500*time.Millisecond), d/2)
	n0, t0, err := quietSample(ctx, c, rc, start.Add(warm), start.Add(d*3/4))
	if err != nil {
		return 0, fmt.Errorf("tcp: %w", err)
	}
	n1, t1, err := quietSample(ctx, c, rc, t0.Add(d-warm), t0.Add(d-warm+d/4))
	if err != nil {
		return 0, fmt.Errorf("tcp: %w", err)
	}
	c.Close()
	rc.Close()
	if err := <-recvErr; err != nil && !errors.Is(err, net.ErrClosed) {
		return 0, fmt.Errorf("tcp: receive: %w", err)
	}
	return float64(n1-n0) * 8 / t1.Sub(t0).Seconds(), nil
}

// quietSample waits until from, then until the sender is quiet (see
// tcpQuiet) or until is reached, and returns the bytes the receiver got
// by then. A sample taken while a hole is being filled would count the
// receiver's out-of-order queue, megabytes at once.
func quietSample(ctx context.Context, sender, receiver net.Conn, from, until time.Time) (int64, time.Time, error) {
	if err := harness.Sleep(ctx, time.Until(from)); err != nil {
		return 0, time.Time{}, err
	}
	for {
		quiet, err := tcpQuiet(sender)
		if err != nil {
			return 0, time.Time{}, err
		}
		if quiet || !time.Now().Before(until) {
			n, err := tcpBytesReceived(receiver)
			return n, time.Now(), err
		}
		if err := harness.Sleep(ctx, 2*time.Millisecond); err != nil {
			return 0, time.Time{}, err
		}
	}
}
