package core

import (
	"math"
	"sync"
	"time"
)

// File descriptors are a process-wide budget: a service that opens files on
// a peer's behalf (sftp handles, git packs, fs blocks) must leave enough for
// the endpoint to accept connections and for the node's own stores. The
// helpers below read the budget ([FileLimit], [OpenFiles]), raise it at
// start ([RaiseFileLimit]) and tell a service when to stop opening files for
// peers ([FilesLow]).

// FileLimit returns the process's soft and hard RLIMIT_NOFILE: the soft
// limit is the number of descriptors the process may hold at once. Off Unix
// it returns an error matching [errors.ErrUnsupported].
func FileLimit() (soft, hard uint64, err error) { return fileLimit() }

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit, as most
// servers do at start, and returns both limits as they are afterwards. Go's
// runtime already raises the soft limit to one below the hard limit at
// start (restoring the original in child processes); RaiseFileLimit then
// leaves it there, so that commands the node runs (ssh shells, git) still
// start with the limit the node was given. When the raise fails the limits
// are returned as they are, with the error. Off Unix it returns an error
// matching [errors.ErrUnsupported]. Call it once, early, from main; it is
// not meant for libraries.
func RaiseFileLimit() (soft, hard uint64, err error) { return raiseFileLimit() }

// OpenFiles returns how many descriptors the process has open. On Linux it
// counts the entries of /proc/self/fd (not counting the one it opens to do
// so), which costs time in proportion to the count: use [FilesLow] on hot
// paths. Elsewhere it returns an error matching [errors.ErrUnsupported].
func OpenFiles() (int, error) { return openFiles() }

// FileReserve is the number of descriptors kept back, out of a soft limit,
// for accepting connections and for the node's own stores: a tenth of the
// limit, at least 64, and at most half of it.
func FileReserve(limit uint64) int {
	r := max(limit/10, 64)
	r = min(r, limit/2)
	return int(min(r, math.MaxInt32))
}

// FilesLow reports whether the process is down to its reserve of
// descriptors ([FileReserve] of the soft limit): a service about to open a
// descriptor for a peer (a session, a file handle) should then refuse with
// a clear "try later" instead, so that accept and the node's own files keep
// working. It is cheap and safe for concurrent use: a count (see
// [OpenFiles]) is reused while it vouches for the caller, that is for at
// most 100ms and for half the headroom it found above the reserve (each
// call assumes its caller opens one descriptor). Near the reserve it counts
// at most once a millisecond and reports low in between. Where descriptors
// cannot be counted it reports false.
func FilesLow() bool { return processFiles.low() }

// processFiles is the process's one gauge: descriptors are a process-wide
// resource, so every caller of FilesLow shares its count.
var processFiles = fileGauge{limit: fileLimit, count: openFiles, now: time.Now}

// How long a count is reused; see FilesLow.
const (
	fileCountTTL = 100 * time.Millisecond
	fileCountMin = time.Millisecond
)

// fileGauge caches the open-descriptor count behind FilesLow. The func
// fields are there for tests.
type fileGauge struct {
	limit func() (soft, hard uint64, err error)
	count func() (int, error)
	now   func() time.Time

	mu      sync.Mutex
	counted time.Time // when the last count was taken; zero: never
	isLow   bool      // what the last count found
	spare   int       // calls the last count still vouches for
}

func (g *fileGauge) low() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	age := now.Sub(g.counted)
	if !g.counted.IsZero() && age >= 0 && age < fileCountTTL {
		switch {
		case g.isLow:
			return true
		case g.spare > 0:
			g.spare--
			return false
		case age < fileCountMin:
			return true // at the edge: do not count on every call
		}
	}
	g.counted = now
	g.isLow, g.spare = false, math.MaxInt
	soft, _, err := g.limit()
	if err != nil || soft > math.MaxInt32 {
		return false // unknown, or a limit no process reaches
	}
	open, err := g.count()
	if err != nil {
		return false
	}
	headroom := int(soft) - open
	reserve := FileReserve(soft)
	g.isLow = headroom <= reserve
	g.spare = max(0, (headroom-reserve)/2)
	return g.isLow
}
