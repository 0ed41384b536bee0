package harness

import (
	"math"
	"slices"
	"time"
)

// Stats summarizes repeated measurements of one quantity.
type Stats struct {
	// N is the number of measurements.
	N int
	// Median, Min and Max are over the measurements; all zero when N is 0.
	Median, Min, Max float64
}

// Summarize returns the Stats of v. It does not modify v.
func Summarize(v []float64) Stats {
	if len(v) == 0 {
		return Stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{N: len(s), Median: med, Min: s[0], Max: s[len(s)-1]}
}

// Ratio returns a.Median / b.Median, or 0 when b has none.
func Ratio(a, b Stats) float64 {
	if b.Median == 0 {
		return 0
	}
	return a.Median / b.Median
}

// Percentile returns the p-th percentile (0 < p <= 100) of d by the
// nearest-rank method, or 0 for no samples. It does not modify d.
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// PairedRatio summarizes, over the rounds, the ratio of variant a's value to
// variant b's within the same round. sample returns a sample's round,
// variant and value, and ok false for samples that do not take part.
// Variants measured next to each other share the machine's slow and fast
// phases, so this ratio is steadier than the ratio of medians.
func PairedRatio[S any, K comparable](samples []S, a, b K, sample func(S) (run int, variant K, value float64, ok bool)) Stats {
	type pair struct{ a, b float64 }
	byRun := map[int]pair{}
	for _, s := range samples {
		run, k, v, ok := sample(s)
		if !ok {
			continue
		}
		p := byRun[run]
		switch k {
		case a:
			p.a = v
		case b:
			p.b = v
		}
		byRun[run] = p
	}
	var ratios []float64
	for _, p := range byRun {
		if p.a > 0 && p.b > 0 {
			ratios = append(ratios, p.a/p.b)
		}
	}
	return Summarize(ratios)
}
