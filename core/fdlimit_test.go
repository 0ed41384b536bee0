package core

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestFileReserve(t *testing.T) {
	tests := []struct {
		limit uint64
		want  int
	}{
		{0, 0},
		{100, 50}, // at most half
		{128, 64},
		{256, 64}, // at least 64
		{1024, 102},
		{1 << 20, 104857},
		{1 << 62, 1<<31 - 1}, // fits an int everywhere
	}
	for _, tt := range tests {
		if got := FileReserve(tt.limit); got != tt.want {
			t.Errorf("FileReserve(%d) = %d, want %d", tt.limit, got, tt.want)
		}
	}
}

func TestOpenFilesCountsDescriptors(t *testing.T) {
	if runtime.GOOS != "linux" {
		if _, err := OpenFiles(); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("OpenFiles off Linux: %v, want ErrUnsupported", err)
		}
		t.Skip("counts only on Linux")
	}
	before, err := OpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := range 10 {
		f, err := os.Create(filepath.Join(dir, string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
	}
	after, err := OpenFiles()
	if err != nil {
		t.Fatal(err)
	}
	// Other goroutines of the test binary may open a descriptor meanwhile.
	if after-before < 10 || after-before > 12 {
		t.Fatalf("open files went from %d to %d after opening 10", before, after)
	}
}

func TestRaiseFileLimit(t *testing.T) {
	soft, hard, err := RaiseFileLimit()
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("RaiseFileLimit: %v, want ErrUnsupported", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if soft+1 < hard || soft > hard {
		t.Fatalf("soft %d, hard %d after raising: want soft at the hard limit", soft, hard)
	}
	gotSoft, gotHard, err := FileLimit()
	if err != nil || gotSoft != soft || gotHard != hard {
		t.Fatalf("FileLimit() = %d, %d, %v; want %d, %d", gotSoft, gotHard, err, soft, hard)
	}
}

// fakeFiles drives a fileGauge: a soft limit, an open count and a clock.
type fakeFiles struct {
	soft   uint64
	open   int
	counts int // calls of count
	err    error
	now    time.Time
}

func (f *fakeFiles) gauge() *fileGauge {
	return &fileGauge{
		limit: func() (uint64, uint64, error) { return f.soft, f.soft, f.err },
		count: func() (int, error) { f.counts++; return f.open, nil },
		now:   func() time.Time { return f.now },
	}
}

func TestFileGauge(t *testing.T) {
	t.Run("low at the reserve", func(t *testing.T) {
		f := &fakeFiles{soft: 1000, open: 899, now: time.Unix(1, 0)}
		g := f.gauge()
		if g.low() {
			t.Fatal("low with 101 free and a reserve of 100")
		}
		f.open, f.now = 900, f.now.Add(fileCountTTL)
		if !g.low() {
			t.Fatal("not low with 100 free and a reserve of 100")
		}
	})
	t.Run("a count vouches for half the headroom", func(t *testing.T) {
		// 1000 limit, 100 reserve, 500 open: 400 above the reserve, so the
		// count answers the next 200 calls.
		f := &fakeFiles{soft: 1000, open: 500, now: time.Unix(1, 0)}
		g := f.gauge()
		for i := range 201 {
			if g.low() {
				t.Fatalf("call %d: low", i)
			}
		}
		if f.counts != 1 {
			t.Fatalf("%d counts for 201 calls, want 1", f.counts)
		}
		f.open = 950 // opened by others since
		f.now = f.now.Add(fileCountMin)
		if !g.low() {
			t.Fatal("the 202nd call did not count again")
		}
		if f.counts != 2 {
			t.Fatalf("%d counts, want 2", f.counts)
		}
	})
	t.Run("a count expires", func(t *testing.T) {
		f := &fakeFiles{soft: 1000, open: 100, now: time.Unix(1, 0)}
		g := f.gauge()
		g.low()
		f.open = 950
		if g.low() {
			t.Fatal("counted again before the count expired")
		}
		f.now = f.now.Add(fileCountTTL)
		if !g.low() {
			t.Fatal("not low after the count expired")
		}
	})
	t.Run("low is kept, then recounted", func(t *testing.T) {
		f := &fakeFiles{soft: 1000, open: 990, now: time.Unix(1, 0)}
		g := f.gauge()
		if !g.low() {
			t.Fatal("not low")
		}
		f.open = 10
		if !g.low() || f.counts != 1 {
			t.Fatalf("recounted (%d) within the count's life", f.counts)
		}
		f.now = f.now.Add(fileCountTTL)
		if g.low() {
			t.Fatal("still low after the files closed")
		}
	})
	t.Run("at the edge counts at most once a millisecond", func(t *testing.T) {
		f := &fakeFiles{soft: 1000, open: 899, now: time.Unix(1, 0)}
		g := f.gauge()
		g.low() // spare 0
		if !g.low() || f.counts != 1 {
			t.Fatalf("second call within a millisecond: counts %d, want 1 and low", f.counts)
		}
		f.now = f.now.Add(fileCountMin)
		if g.low() || f.counts != 2 {
			t.Fatalf("after a millisecond: counts %d, want 2 and not low", f.counts)
		}
	})
	t.Run("unknown limit is never low", func(t *testing.T) {
		f := &fakeFiles{err: errors.ErrUnsupported, now: time.Unix(1, 0)}
		if f.gauge().low() {
			t.Fatal("low without a limit")
		}
		f = &fakeFiles{soft: 1 << 40, open: 1 << 39, now: time.Unix(1, 0)}
		if f.gauge().low() {
			t.Fatal("low under a limit no process reaches")
		}
	})
}

func TestFilesLowOnThisProcess(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts only on Linux")
	}
	// The test binary holds a few descriptors under a raised limit.
	if FilesLow() {
		t.Fatal("FilesLow in an idle test process")
	}
}
