//go:build !race

package sftp_test

// raceEnabled is true in -race builds, where QUIC is several times slower.
const raceEnabled = false
