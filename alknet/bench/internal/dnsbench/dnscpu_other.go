//go:build !unix

package dnsbench

import "time"

// processCPU returns 0: CPU time is read on unix only.
func processCPU() time.Duration { return 0 }
