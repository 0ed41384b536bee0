//go:build race

package mcp

// raceDetector: the race detector changes what allocates (sync.Pool drops
// items at random under it), so allocation bounds are not checked.
const raceDetector = true
