package fs

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// The benchmarks below are the CLI's paths without the process around
// them, so they can be profiled (go test -bench Get -cpuprofile):
// BenchmarkAdd is `alknet fs add` (Add, then Pin), BenchmarkGet is
// `alknet fs cat --node` (Client.Cat into an empty store) and
// BenchmarkRawStream the same bytes on one plain stream of the same
// connection kind, the anchor `alknet perf` is for the CLI.

// benchBytes is the size of the benchmarks' file: 64 MiB, or
// ALKNET_FS_BENCH_MIB.
func benchBytes(b *testing.B) int {
	if s := os.Getenv("ALKNET_FS_BENCH_MIB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n << 20
	}
	return 64 << 20
}

// cpuClock sums the process's CPU time (user and system, every goroutine:
// with the node in the process, both ends) over the timed parts of a
// benchmark, a measure the other load on a shared machine skews less than
// wall time.
type cpuClock struct {
	start, total time.Duration
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuClock) begin() { c.start = cpuNow() }
func (c *cpuClock) end()   { c.total += cpuNow() - c.start }

// report adds the CPU time per operation to b's results.
func (c *cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(c.total.Milliseconds())/float64(b.N), "cpu-ms/op")
}

// randomFile writes n random bytes to a file in a temporary directory.
func randomFile(b *testing.B, n int) string {
	b.Helper()
	p := filepath.Join(b.TempDir(), "input")
	data := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{'b'}).Read(data)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkAdd(b *testing.B) {
	for _, noSync := range []bool{false, true} {
		b.Run("no_sync="+strconv.FormatBool(noSync), func(b *testing.B) {
			n := benchBytes(b)
			input := randomFile(b, n)
			ctx := context.Background()
			var cpu cpuClock
			defer cpu.report(b)
			b.SetBytes(int64(n))
			for b.Loop() {
				b.StopTimer()
				s, err := Open(b.TempDir(), Options{NoSync: noSync})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				cpu.begin()
				root, err := s.Add(ctx, input, AddOptions{})
				if err == nil {
					err = s.Pin(ctx, root.String(), root)
				}
				if err != nil {
					b.Fatal(err)
				}
				cpu.end()
				b.StopTimer()
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// rawHandler answers each stream's 8-byte big-endian length with that many
// bytes: the plain-stream anchor of BenchmarkRawStream.
type rawHandler struct{}

const rawALPN = "alknet/fs-bench-raw"

func (rawHandler) ALPNs() []string { return []string{rawALPN} }

func (rawHandler) Serve(ctx context.Context, conn core.Conn) error {
	var wg sync.WaitGroup
	defer wg.Wait() // the connection ends when Serve returns
	for {
		st, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			var hdr [8]byte
			if _, err := io.ReadFull(st, hdr[:]); err != nil {
				return
			}
			buf := make([]byte, 256<<10)
			for left := binary.BigEndian.Uint64(hdr[:]); left > 0; {
				m := min(left, uint64(len(buf)))
				if _, err := st.Write(buf[:m]); err != nil {
					return
				}
				left -= m
			}
		}()
	}
}

// benchNode serves the fs handler (public) and rawHandler.
func benchNode(b *testing.B) (*coretest.Node, *Store) {
	store, err := Open(b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	h, err := New(Config{Store: store, Public: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	node := coretest.Start(b, core.Config{Logger: slog.New(slog.DiscardHandler)}, h, rawHandler{})
	return node, store
}

func BenchmarkGet(b *testing.B) {
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		b.Run(string(network), func(b *testing.B) {
			n := benchBytes(b)
			node, store := benchNode(b)
			ctx := context.Background()
			root, err := store.Add(ctx, randomFile(b, n), AddOptions{})
			if err != nil {
				b.Fatal(err)
			}
			var cpu cpuClock
			defer cpu.report(b)
			b.SetBytes(int64(n))
			for b.Loop() {
				b.StopTimer()
				local, err := Open(b.TempDir(), Options{NoSync: true})
				if err != nil {
					b.Fatal(err)
				}
				// A connection per get: over TCP+TLS a connection carries
				// one stream.
				conn := node.Dial(b, network, nil, ALPN)
				b.StartTimer()
				cpu.begin()
				_, got, _, err := NewClient(conn, local).Cat(ctx, root, Selection{}, io.Discard)
				if err != nil || got != int64(n) {
					b.Fatalf("cat: %d bytes, %v", got, err)
				}
				cpu.end()
				b.StopTimer()
				local.Close()
				b.StartTimer()
			}
		})
	}
}

func BenchmarkRawStream(b *testing.B) {
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		b.Run(string(network), func(b *testing.B) {
			n := benchBytes(b)
			node, _ := benchNode(b)
			ctx := context.Background()
			buf := make([]byte, 256<<10)
			var cpu cpuClock
			defer cpu.report(b)
			b.SetBytes(int64(n))
			for b.Loop() {
				b.StopTimer()
				conn := node.Dial(b, network, nil, rawALPN)
				b.StartTimer()
				cpu.begin()
				st, err := conn.OpenStream(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := st.Write(binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
					b.Fatal(err)
				}
				got, err := io.CopyBuffer(io.Discard, io.LimitReader(st, int64(n)+1), buf)
				if err != nil || got != int64(n) {
					b.Fatalf("raw: %d bytes, %v", got, err)
				}
				st.Close()
				cpu.end()
			}
		})
	}
}
