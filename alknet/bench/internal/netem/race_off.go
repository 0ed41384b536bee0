//go:build !race

package netem

// raceEnabled: this program is built with the race detector.
const raceEnabled = false
