//go:build race

package bench

// raceEnabled: this program is built with the race detector.
const raceEnabled = true
