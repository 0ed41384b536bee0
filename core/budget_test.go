package core_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

func TestBudgetChargesItsPoolAllOrNone(t *testing.T) {
	pool := core.NewBudget(100, nil)
	a := core.NewBudget(60, pool)
	b := core.NewBudget(60, pool)
	if !a.TryAcquire(60) {
		t.Fatal("a: 60 of 60 refused")
	}
	if a.TryAcquire(1) {
		t.Fatal("a: past its own limit accepted")
	}
	if b.TryAcquire(41) {
		t.Fatal("b: past the pool's limit accepted")
	}
	if got := b.Used(); got != 0 {
		t.Fatalf("b charged %d after a refusal, want 0", got)
	}
	if !b.TryAcquire(40) {
		t.Fatal("b: 40 within both limits refused")
	}
	a.Release(60)
	b.Release(40)
	if got := pool.Used(); got != 0 {
		t.Fatalf("pool holds %d after every release", got)
	}
	var unlimited *core.Budget
	if !unlimited.TryAcquire(1 << 40) {
		t.Fatal("a nil budget refused")
	}
}

// TestReadBodyGrowsWithBytes: a peer that declares 15 MiB and sends 6 bytes
// makes the reader hold one small chunk, not the declared length.
func TestReadBodyGrowsWithBytes(t *testing.T) {
	pool := core.NewBudget(0, nil)
	lim := core.FrameLimits{Budget: core.NewBudget(0, pool)}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := lim.ReadBody(pr, 15<<20)
		done <- err
	}()
	if _, err := pw.Write([]byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	if got := pool.Used(); got > 8<<10 {
		t.Errorf("6 bytes received, %d bytes held", got)
	}
	pw.Close()
	if err := <-done; !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short body: %v, want io.ErrUnexpectedEOF", err)
	}
	if got := pool.Used(); got != 0 {
		t.Errorf("%d bytes still charged after ReadBody returned", got)
	}
}

func TestReadBody(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 100_000)
	for _, tc := range []struct {
		name   string
		limit  int64
		in     []byte
		n      int
		want   error
		wantOK bool
	}{
		{"whole body, unlimited", 0, body, len(body), nil, true},
		{"whole body within budget", 128 << 10, body, len(body), nil, true},
		{"over the connection budget", 64 << 10, body, len(body), core.ErrOverBudget, false},
		{"stream ends early", 0, body[:10], len(body), io.ErrUnexpectedEOF, false},
		{"empty body", 0, nil, 0, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := core.FrameLimits{Budget: core.NewBudget(tc.limit, nil)}
			got, err := lim.ReadBody(bytes.NewReader(tc.in), tc.n)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.wantOK && !bytes.Equal(got, tc.in[:tc.n]) {
				t.Fatalf("got %d bytes, want %d", len(got), tc.n)
			}
			if u := lim.Budget.Used(); u != 0 {
				t.Errorf("%d bytes still charged", u)
			}
		})
	}
}

// TestReadBodyMinRate: a frame dripping after its grace is cut; one at the
// rate is read whole.
func TestReadBodyMinRate(t *testing.T) {
	lim := core.FrameLimits{Grace: 200 * time.Millisecond, MinRate: 64 << 10}
	for _, tc := range []struct {
		name  string
		chunk int
		every time.Duration
		want  error
	}{
		{"drip of 1 byte every 20ms", 1, 20 * time.Millisecond, core.ErrFrameTooSlow},
		{"steady 4 KiB every 5ms", 4 << 10, 5 * time.Millisecond, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, cli := net.Pipe()
			defer srv.Close()
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				defer cli.Close()
				p := make([]byte, tc.chunk)
				for {
					select {
					case <-stop:
						return
					case <-time.After(tc.every):
					}
					if _, err := cli.Write(p); err != nil {
						return
					}
				}
			}()
			start := time.Now()
			_, err := lim.ReadBody(srv, 256<<10)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v after %v, want %v", err, time.Since(start), tc.want)
			}
			if tc.want != nil && time.Since(start) > 2*time.Second {
				t.Errorf("cut after %v, want soon after the grace", time.Since(start))
			}
		})
	}
}

func TestReadAll(t *testing.T) {
	msg := bytes.Repeat([]byte("m"), 10_000)
	for _, tc := range []struct {
		name  string
		max   int
		limit int64
		want  error
	}{
		{"within max", 10_000, 0, nil},
		{"one byte over max", 9_999, 0, core.ErrTooLarge},
		{"over budget", 10_000, 8 << 10, core.ErrOverBudget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := core.FrameLimits{Budget: core.NewBudget(tc.limit, nil)}
			got, err := lim.ReadAll(bytes.NewReader(msg), tc.max)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.want == nil && !bytes.Equal(got, msg) {
				t.Fatalf("got %d bytes", len(got))
			}
		})
	}
}

// FuzzFrameLimits: any input and limit read as a body or a message yields
// at most the limit, the exact bytes when it succeeds, or an error; the
// budget is always released.
func FuzzFrameLimits(f *testing.F) {
	f.Add([]byte("hello"), uint16(5), uint16(64))                 // exact body
	f.Add([]byte("hello"), uint16(9), uint16(64))                 // stream ends early
	f.Add(bytes.Repeat([]byte{0}, 9000), uint16(8500), uint16(8)) // over a small budget (KiB)
	f.Fuzz(func(t *testing.T, in []byte, n, budgetKiB uint16) {
		lim := core.FrameLimits{Budget: core.NewBudget(int64(budgetKiB)<<10, nil)}
		body, err := lim.ReadBody(bytes.NewReader(in), int(n))
		if err == nil && !bytes.Equal(body, in[:n]) {
			t.Fatalf("ReadBody returned %d bytes, want the first %d of the input", len(body), n)
		}
		msg, err := lim.ReadAll(bytes.NewReader(in), int(n))
		if err == nil && (len(msg) > int(n) || !bytes.Equal(msg, in)) {
			t.Fatalf("ReadAll returned %d bytes for %d in, limit %d", len(msg), len(in), n)
		}
		if u := lim.Budget.Used(); u != 0 {
			t.Fatalf("%d bytes still charged", u)
		}
	})
}
