package msg

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/msg/sphinx"
)

// Benchmarks of issue 9 §5 (results in docs/benchmarks.md): a mix's
// sustained packets per second with zero delay, in-process and over
// loopback QUIC, and the end-to-end latency through three mixes. They run
// only with -bench; each keeps its work proportional to b.N.

// The fixed parties of the mix benchmarks: benchMixParty is the mix (its
// messaging key is the mix seed), benchSinkParty the next hop. Fixed, so
// that the cached packets stay valid across the benchmark's runs.
const (
	benchMixParty  = 0xa0
	benchSinkParty = 0xa1
)

// benchPool caches Sphinx packets whose first hop is the bench mix's key
// of the epoch they were made in: relay packets (route: mix, sink, one
// more) and exit packets (route: the mix alone).
var benchPool struct {
	mu          sync.Mutex
	epoch       uint64
	relay, exit [][]byte
}

// benchPackets returns n distinct packets for the bench mix, making the
// missing ones on every core.
func benchPackets(tb testing.TB, exit bool, n int) [][]byte {
	tb.Helper()
	mix, sink := vectorParty(tb, benchMixParty), vectorParty(tb, benchSinkParty)
	epoch := EpochAt(time.Now(), DefaultEpochLength)
	key, err := MixEpochKey(mix.key.Bytes(), epoch)
	if err != nil {
		tb.Fatal(err)
	}
	route := []sphinx.Hop{{ID: [sphinx.IDSize]byte(mix.id.PublicKey()), Key: key.PublicKey()}}
	if !exit {
		sinkHop := sphinx.Hop{ID: [sphinx.IDSize]byte(sink.id.PublicKey()), Key: sink.key.PublicKey()}
		route = append(route, sinkHop, sinkHop)
	}
	var dest [sphinx.IDSize]byte
	copy(dest[:], sink.id.PublicKey())
	plaintext := make([]byte, 1200)
	rand.Read(plaintext)

	benchPool.mu.Lock()
	defer benchPool.mu.Unlock()
	if benchPool.epoch != epoch {
		benchPool.epoch, benchPool.relay, benchPool.exit = epoch, nil, nil
	}
	pool := &benchPool.relay
	if exit {
		pool = &benchPool.exit
	}
	missing := n - len(*pool)
	if missing <= 0 {
		return (*pool)[:n]
	}
	made := make([][]byte, missing)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(missing); i = next.Add(1) - 1 {
				p, err := sphinx.NewPacket(route, dest, plaintext)
				if err != nil {
					failed.Store(err)
					return
				}
				made[i] = p
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		tb.Fatal(err)
	}
	*pool = append(*pool, made...)
	return (*pool)[:n]
}

// newBenchMix is the bench mix with no delay and the default queue bound.
func newBenchMix(tb testing.TB, resolve func(core.NodeID) (string, error), batch time.Duration) *Mix {
	tb.Helper()
	p := vectorParty(tb, benchMixParty)
	if resolve == nil {
		resolve = func(core.NodeID) (string, error) { return "", errors.New("no next hop") }
	}
	m, err := NewMix(MixConfig{
		Seed: p.key.Bytes(), Dialer: &core.Dialer{Key: p.node}, Resolve: resolve,
		MeanDelay: -1, BatchInterval: batch,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// reportRate reports b.N packets over the elapsed time as packets per
// second, and the process's CPU time since cpuStart per packet, which a
// machine busy with other work changes less than the wall time.
func reportRate(b *testing.B, elapsed, cpuStart time.Duration) {
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pkts/s")
	reportCPU(b, cpuStart)
}

// reportCPU reports the process's CPU time since cpuStart per operation
// (all threads: the GC's too, and in the loopback benchmarks every node's).
func reportCPU(b *testing.B, cpuStart time.Duration) {
	if cpu := processCPU(); cpu > 0 {
		b.ReportMetric(float64(cpu-cpuStart)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
}

// BenchmarkX25519 is one X25519 ECDH with crypto/ecdh: one Montgomery
// ladder, the unit of a Sphinx unwrap's cost.
func BenchmarkX25519(b *testing.B) {
	k, _ := ecdh.X25519().GenerateKey(rand.Reader)
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	pub := peer.PublicKey()
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if _, err := k.ECDH(pub); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// BenchmarkMixAccept is Mix.Accept of pre-built packets with zero delay:
// unwrap, replay check and queueing, and every 64 packets the dequeue of
// the due ones (the shuffle Run does), without sending. relay is a first
// hop of three, exit a last hop; relay-parallel calls Accept on every core
// at once. ns/op is the CPU time of one packet, so pkts/s of relay and exit
// is per core.
func BenchmarkMixAccept(b *testing.B) {
	for _, exit := range []bool{false, true} {
		name := "relay"
		if exit {
			name = "exit"
		}
		b.Run(name, func(b *testing.B) {
			ps := benchPackets(b, exit, b.N)
			m := newBenchMix(b, nil, 0)
			b.ReportAllocs()
			cpu := processCPU()
			b.ResetTimer()
			for i, p := range ps {
				if err := m.Accept(p); err != nil {
					b.Fatal(err)
				}
				if i%64 == 63 {
					m.due(time.Now())
				}
			}
			reportRate(b, b.Elapsed(), cpu)
		})
	}
	b.Run("relay-parallel", func(b *testing.B) {
		ps := benchPackets(b, false, b.N)
		m := newBenchMix(b, nil, 0)
		var next atomic.Int64
		b.ReportAllocs()
		cpu := processCPU()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			n := 0
			for pb.Next() {
				if err := m.Accept(ps[next.Add(1)-1]); err != nil {
					b.Error(err)
					return
				}
				if n++; n%64 == 0 {
					m.due(time.Now())
				}
			}
		})
		reportRate(b, b.Elapsed(), cpu)
	})
}

// countingSink is a node on alknet/msg that answers every request OK and
// counts relay requests: the next hop of BenchmarkMixRelayQUIC, which does
// no unwrapping of its own.
type countingSink struct{ relayed atomic.Int64 }

func (s *countingSink) ALPNs() []string { return []string{ALPN} }

func (s *countingSink) Serve(ctx context.Context, conn core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for st, err := conn.AcceptStream(ctx); err == nil; st, err = conn.AcceptStream(ctx) {
		wg.Go(func() { s.answer(ctx, st) })
	}
	return nil
}

// answer answers the requests of one stream until it ends.
func (s *countingSink) answer(ctx context.Context, st core.Stream) {
	stop := context.AfterFunc(ctx, func() { st.Abort(core.CodeNoError) })
	defer stop()
	defer st.Close()
	for {
		t, _, err := readFrame(st, 1+sphinx.PacketSize, core.FrameLimits{})
		if err != nil {
			return
		}
		if t == opRelay {
			s.relayed.Add(1)
		}
		if writeFrame(st, respOK, nil) != nil {
			return
		}
	}
}

// benchStreams is how many streams the sender of BenchmarkMixRelayQUIC
// pushes packets on at once, over one connection.
const benchStreams = 8

// BenchmarkMixRelayQUIC pushes b.N packets over loopback QUIC to a real mix
// node (alknet/msg handler, Mix with no delay and a 1 ms batch interval),
// whose next hop is a real node that counts arrivals. pkts/s is b.N over
// the time from the first push to the last arrival at the next hop;
// accepted-pkts/s is the rate at which the mix acknowledged them; busy/op
// the share of pushes refused as busy (queue full) and retried.
func BenchmarkMixRelayQUIC(b *testing.B) {
	mixP, sinkP, sender := vectorParty(b, benchMixParty), vectorParty(b, benchSinkParty), newParty(b)
	ps := benchPackets(b, false, b.N)
	quiet := slog.New(slog.DiscardHandler)
	sink := &countingSink{}
	sinkNode := coretest.Start(b, core.Config{Key: sinkP.node, Logger: quiet}, sink)
	mix := newBenchMix(b, func(id core.NodeID) (string, error) {
		if id == sinkP.id {
			return sinkNode.Addr, nil
		}
		return "", fmt.Errorf("no address for %s", id.ShortString())
	}, time.Millisecond)
	mixNode, _ := serveMsg(b, mixP, filepath.Join(b.TempDir(), "mix.db"), []core.PeerEntry{grant(sender, RelayScope)}, func(c *Config) { c.Mix = mix })
	runCtx, stopRun := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); mix.Run(runCtx) }()
	b.Cleanup(func() { stopRun(); <-ran })

	first := session(b, sender, mixNode.Addr, core.NetworkQUIC)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var next, busy atomic.Int64
	cpu := processCPU()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range benchStreams {
		s := NewSession(first.conn)
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(ps)); i = next.Add(1) - 1 {
				for {
					err := s.relay(ctx, ps[i])
					var re *RemoteError
					if errors.As(err, &re) && re.Status == StatusQuota {
						busy.Add(1)
						time.Sleep(time.Millisecond)
						continue
					}
					if err != nil {
						b.Error(err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	accepted := b.Elapsed()
	for sink.relayed.Load() < int64(b.N) {
		if ctx.Err() != nil || b.Failed() {
			b.Fatalf("%d of %d packets arrived; mix stats %+v", sink.relayed.Load(), b.N, mix.Stats())
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	reportRate(b, b.Elapsed(), cpu)
	b.ReportMetric(float64(b.N)/accepted.Seconds(), "accepted-pkts/s")
	b.ReportMetric(float64(busy.Load())/float64(b.N), "busy/op")
}

// BenchmarkMixnetLatency sends one-fragment messages from Alice to Bob's
// inbox through the three mixes of newTestNet, with no mix delay and the
// batch interval of the sub-benchmark's name, one message at a time, and
// for comparison delivers the same message directly to the home node
// (Dial, Send, Close), interleaved. Each is timed from the send call
// (SendMixnet, or Dial) to the entry's arrival on Bob's watch, and split
// at the send call's return (for SendMixnet: the entry mix accepted).
// Reported: p50 and p99 of both; send-p50 of SendMixnet's call (seal,
// packet, dial, the entry's Accept); µs/hop = (mixnet p50 − direct p50) / 3
// − batch/2, the time each hop adds less the mean wait for the next batch
// (the configured delay); fwd-µs/hop the same for the part after the send
// call returned, i.e. without the sender's work (three legs: entry to
// middle, middle to exit, exit to the home node). ns/op is one of each.
func BenchmarkMixnetLatency(b *testing.B) {
	for _, batch := range []time.Duration{200 * time.Microsecond, time.Millisecond} {
		b.Run(fmt.Sprintf("batch=%dus", batch.Microseconds()), func(b *testing.B) {
			benchLatency(b, batch)
		})
	}
}

// latencies are the timings of one kind of send.
type latencies struct{ total, send, after []time.Duration }

func benchLatency(b *testing.B, batch time.Duration) {
	tn := newTestNet(b, 0, func(c *MixConfig) {
		c.MeanDelay, c.BatchInterval = -1, batch
		c.Logger = slog.New(slog.DiscardHandler)
	})
	alice, bob := tn.alice, tn.bob
	// Alice may also deposit directly, for the baseline.
	peers := []core.PeerEntry{grant(alice, RelayScope, SendScope), grant(bob, RelayScope)}
	for _, p := range tn.mixP {
		peers = append(peers, grant(p, RelayScope))
	}
	d, err := core.NewDirectory(peers, nil)
	if err != nil {
		b.Fatal(err)
	}
	tn.home.Identities.Store(d)
	inbox := tn.watch(b, bob)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	dialer := &core.Dialer{Key: alice.node}
	m := Message{To: bob.id, ContentType: TextType, Body: []byte("latency through three mixes")}
	direct := func() error {
		s, err := Dial(ctx, dialer, tn.home.Addr)
		if err != nil {
			return err
		}
		defer s.Close()
		_, err = s.Send(ctx, alice.node, m)
		return err
	}
	mixnet := func() error {
		_, err := SendMixnet(ctx, dialer, tn.dir, alice.node, bob.key.PublicKey(), m)
		return err
	}
	measure := func(l *latencies, send func() error) {
		start := time.Now()
		if err := send(); err != nil {
			b.Fatal(err)
		}
		sent := time.Since(start)
		if e := next(b, inbox); e.Kind != KindEnvelope {
			b.Fatalf("entry of kind %d", e.Kind)
		}
		total := time.Since(start)
		l.total, l.send, l.after = append(l.total, total), append(l.send, sent), append(l.after, total-sent)
	}
	var dl, ml latencies
	for range 5 { // connections between the mixes and to the home node
		measure(&latencies{}, direct)
		measure(&latencies{}, mixnet)
	}
	for b.Loop() {
		measure(&dl, direct)
		measure(&ml, mixnet)
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	dp50, dp99 := percentiles(dl.total)
	mp50, mp99 := percentiles(ml.total)
	send50, _ := percentiles(ml.send)
	after50, _ := percentiles(ml.after)
	dafter50, _ := percentiles(dl.after)
	b.ReportMetric(us(mp50), "p50-µs")
	b.ReportMetric(us(mp99), "p99-µs")
	b.ReportMetric(us(dp50), "direct-p50-µs")
	b.ReportMetric(us(dp99), "direct-p99-µs")
	b.ReportMetric(us(send50), "send-p50-µs")
	b.ReportMetric(us((mp50-dp50)/3-batch/2), "µs/hop")
	b.ReportMetric(us((after50-dafter50)/3-batch/2), "fwd-µs/hop")
}

// percentiles returns the 50th and 99th percentiles (nearest rank).
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(q float64) time.Duration { return s[int(math.Ceil(q*float64(len(s))))-1] }
	return rank(0.50), rank(0.99)
}
