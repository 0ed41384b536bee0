package fsbench

import (
	"strings"
	"testing"
	"time"
)

// TestReportGoalLines checks that the report ends with one goal line per
// goal of issue 18, from the ratio of the median MB/s.
func TestReportGoalLines(t *testing.T) {
	tests := []struct {
		name    string
		samples []FSSample
		want    []string
	}{
		{
			name: "all measured",
			samples: []FSSample{
				{Run: 1, Variant: fsAddNoSync, Wall: 4 * time.Second},
				{Run: 1, Variant: fsdd, Wall: time.Second},
				{Run: 1, Variant: fsGet, Wall: 2 * time.Second},
				{Run: 1, Variant: fsPerf, Wall: time.Second},
				{Run: 2, Variant: fsGet, Wall: time.Second},
				{Run: 2, Variant: fsPerf, Wall: time.Second},
			},
			want: []string{
				"goal fs-add-nosync-vs-dd loopback ratio 0.250 target >=0.5 missed",
				"goal fs-get-vs-perf loopback ratio 0.750 target >=0.7 met",
			},
		},
		{
			name: "get only",
			samples: []FSSample{
				{Run: 1, Variant: fsGet, Wall: time.Second},
				{Run: 1, Variant: fsPerf, Wall: 2 * time.Second},
			},
			want: []string{"goal fs-get-vs-perf loopback ratio 2.000 target >=0.7 met"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &FSReport{config: FSConfig{Bytes: 1 << 20, Runs: 2}, samples: tc.samples}
			var b strings.Builder
			r.WriteMarkdown(&b, nil)
			lines := strings.Split(strings.TrimSpace(b.String()), "\n")
			if len(lines) < len(tc.want) {
				t.Fatalf("report has %d lines:\n%s", len(lines), b.String())
			}
			tail := lines[len(lines)-len(tc.want):]
			for i, want := range tc.want {
				if tail[i] != want {
					t.Errorf("goal line %d is %q, want %q", i, tail[i], want)
				}
			}
		})
	}
}
