//go:build !unix

package msg

import "time"

// processCPU is not measured here: zero, and the benchmarks leave the CPU
// metric out.
func processCPU() time.Duration { return 0 }
