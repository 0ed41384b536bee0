package main

import (
	"bytes"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestMeter: a transfer shorter than the delay prints nothing; a longer
// one redraws its line and ends with a summary of bytes, time and rate,
// and a failed one ends with the line cleared and no summary.
func TestMeter(t *testing.T) {
	t.Run("short", func(t *testing.T) {
		var b syncBuffer
		m := startMeter(&b, "pushed", time.Hour, time.Millisecond)
		m.set(5 << 20)
		m.finish(true)
		if b.String() != "" {
			t.Errorf("a short transfer printed %q", b.String())
		}
	})
	for _, ok := range []bool{true, false} {
		var b syncBuffer
		m := startMeter(&b, "pushed", 0, time.Millisecond)
		m.set(1_500_000)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(b.String(), "\r\x1b[Kpushed 1.5 MB, ") {
			if time.Now().After(deadline) {
				t.Fatalf("no progress line: %q", b.String())
			}
			time.Sleep(time.Millisecond)
		}
		m.finish(ok)
		out := b.String()
		summary := regexp.MustCompile(`\r\x1b\[Kpushed 1\.5 MB in \S+ \(\S+ \S+/s\)\n$`)
		if ok && !summary.MatchString(out) {
			t.Errorf("succeeded: output %q does not end with the summary line", out)
		}
		if !ok && !strings.HasSuffix(out, "\r\x1b[K") {
			t.Errorf("failed: output %q does not end with the line cleared", out)
		}
	}
	var nilMeter *meter
	nilMeter.set(1)
	nilMeter.finish(true) // a nil meter (stderr not a terminal) does nothing
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 2_500_000: "2.5 MB", 3_210_000_000: "3.21 GB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
