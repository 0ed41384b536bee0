package dns

import (
	"context"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// BenchmarkStreamTransports answers queries on DoQ (a stream per query)
// and DoT (pipelined on one stream) from 16 goroutines sharing one
// connection to a loopback endpoint: the cost per query of each transport,
// client and server in this process.
func BenchmarkStreamTransports(b *testing.B) {
	s := testServer(b, nil)
	n := coretest.Start(b, core.Config{NoALPN: ALPNDoT}, s)
	q := packQuery(b, "www.example.org.", mdns.TypeA)
	b.Run("doq", func(b *testing.B) {
		conn := n.Dial(b, core.NetworkQUIC, nil, ALPNDoQ)
		runQueries(b, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := conn.OpenStream(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			if _, err := st.Write(appendFrame(nil, q)); err != nil {
				return err
			}
			_ = st.CloseWrite()
			_, err = readFrame(st, minMessageBytes, nil)
			return err
		})
	})
	b.Run("dot", func(b *testing.B) {
		conn := n.Dial(b, core.NetworkTCP, nil, ALPNDoT)
		st, err := conn.OpenStream(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		// One writer and one reader at a time; answers carry the query's
		// ID, which the benchmark does not need to match.
		var wmu, rmu sync.Mutex
		runQueries(b, func() error {
			wmu.Lock()
			_, err := st.Write(appendFrame(nil, q))
			wmu.Unlock()
			if err != nil {
				return err
			}
			rmu.Lock()
			defer rmu.Unlock()
			_, err = readFrame(st, minMessageBytes, nil)
			return err
		})
	})
}

// runQueries runs b.N exchanges from 16 goroutines.
func runQueries(b *testing.B, exchange func() error) {
	b.ReportAllocs()
	b.SetParallelism(8) // GOMAXPROCS 2 here: 16 goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := exchange(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
