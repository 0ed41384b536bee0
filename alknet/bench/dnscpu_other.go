//go:build !unix

package bench

import "time"

// processCPU returns 0: CPU time is read on unix only.
func processCPU() time.Duration { return 0 }
