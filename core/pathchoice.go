package core

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Path-aware transport choice (docs/protocols/core.md, "Transport
// choice"). quic-go's only congestion control is NewReno, whose rate under
// random loss p is bounded by about 1.22·MSS/(RTT·√p): 2.3 Mbit/s at 1 %
// and 60 ms, where the kernel's TCP (BBR or CUBIC) moves 40+. A [Dialer]
// with [Dialer.Paths] watches each QUIC connection it makes; when a window
// of it is bound by loss at that ceiling it remembers TCP+TLS for the node,
// and later dials of that node (by any alknet process sharing the file)
// use TCP+TLS first until the entry expires.

// PathStats is what a connection knows of its path. Counts are
// cumulative since the handshake; [PathStats.Since] makes a window.
type PathStats struct {
	// Transport is NetworkQUIC or NetworkTCP.
	Transport Network
	// SmoothedRTT and MinRTT are the connection's RTT estimates.
	SmoothedRTT, MinRTT time.Duration
	// CongestionWindow is this side's congestion window in bytes.
	CongestionWindow uint64
	// BytesSent and BytesReceived count the connection's packets' bytes
	// (retransmissions and ACKs included).
	BytesSent, BytesReceived uint64
	// PacketsSent and PacketsLost are this side's packets (ACK-only ones
	// included) and those of them declared lost: the loss towards the
	// peer.
	PacketsSent, PacketsLost uint64
	// PacketsReceived and PacketsMissing are the peer's packets that
	// arrived and the gaps in their packet numbers: the loss from the peer.
	PacketsReceived, PacketsMissing uint64
}

// Since returns s as a window from prev, an earlier snapshot of the same
// connection: the counts are differences, the RTTs and window s's own.
func (s PathStats) Since(prev PathStats) PathStats {
	sub := func(a, b uint64) uint64 {
		if a < b {
			return 0
		}
		return a - b
	}
	w := s
	w.BytesSent = sub(s.BytesSent, prev.BytesSent)
	w.BytesReceived = sub(s.BytesReceived, prev.BytesReceived)
	w.PacketsSent = sub(s.PacketsSent, prev.PacketsSent)
	w.PacketsLost = sub(s.PacketsLost, prev.PacketsLost)
	w.PacketsReceived = sub(s.PacketsReceived, prev.PacketsReceived)
	w.PacketsMissing = sub(s.PacketsMissing, prev.PacketsMissing)
	return w
}

// PathStatser is implemented by connections that report [PathStats]: those
// carried by QUIC. TCP+TLS connections report nothing (the kernel's
// congestion control needs no help).
type PathStatser interface {
	PathStats() PathStats
}

// PathStatsOf returns c's path statistics, if its transport reports them.
func PathStatsOf(c Conn) (PathStats, bool) {
	if ps, ok := c.(PathStatser); ok {
		return ps.PathStats(), true
	}
	return PathStats{}, false
}

// PathStats implements [PathStatser] from quic-go's connection stats.
func (c *quicConn) PathStats() PathStats {
	st := c.qc.ConnectionStats()
	return PathStats{
		Transport:        NetworkQUIC,
		SmoothedRTT:      st.SmoothedRTT,
		MinRTT:           st.MinRTT,
		CongestionWindow: st.CongestionWindow,
		BytesSent:        st.BytesSent,
		BytesReceived:    st.BytesReceived,
		PacketsSent:      st.PacketsSent,
		PacketsLost:      st.PacketsLost,
		PacketsReceived:  st.PacketsReceived,
		PacketsMissing:   st.PacketsMissing,
	}
}

// The thresholds of [JudgePath].
const (
	// PathMinLossEvidence is the fewest lost (or missing) packets in a
	// window before its loss rate counts.
	PathMinLossEvidence = 8
	// PathMinLoss is the loss rate below which QUIC is never judged
	// loss-bound: NewReno's penalty is small there.
	PathMinLoss = 0.002
	// PathCeilingFactor: a window is loss-bound when its goodput is below
	// this many times NewReno's ceiling at its loss rate. A window that
	// beat the ceiling by more lost its packets to something the rate
	// formula does not model (the burst of a slow-start overshoot, say).
	PathCeilingFactor = 3
	// pathMSS is the payload of a full QUIC packet on an Ethernet path.
	pathMSS = 1400
)

// PathVerdict is [JudgePath]'s answer for one window of a connection.
type PathVerdict struct {
	// LossBound says the window's goodput was held at NewReno's ceiling by
	// random loss: TCP+TLS would do better on this path.
	LossBound bool
	// Loss is the window's loss rate (the larger of the two directions
	// that had enough evidence; 0 if neither had).
	Loss float64
	// Goodput is the window's bytes per second, both directions.
	Goodput float64
	// Ceiling is NewReno's rate bound at Loss and the smoothed RTT, in
	// bytes per second; +Inf without loss.
	Ceiling float64
}

func (v PathVerdict) String() string {
	return fmt.Sprintf("loss %.2f%%, goodput %.1f Mbit/s, NewReno ceiling %.1f Mbit/s, loss-bound %v",
		100*v.Loss, v.Goodput*8/1e6, v.Ceiling*8/1e6, v.LossBound)
}

// JudgePath judges a window w (see [PathStats.Since]) of a QUIC
// connection that lasted d: it is loss-bound when it lost at least
// [PathMinLoss] of its packets in one direction, with at least
// [PathMinLossEvidence] of them, and moved less than [PathCeilingFactor]
// times NewReno's ceiling 1.22·MSS/(RTT·√loss). A TCP window is never
// loss-bound.
func JudgePath(w PathStats, d time.Duration) PathVerdict {
	v := PathVerdict{Ceiling: math.Inf(1)}
	if d > 0 {
		v.Goodput = float64(w.BytesSent+w.BytesReceived) / d.Seconds()
	}
	if w.Transport != NetworkQUIC || d <= 0 {
		return v
	}
	if w.PacketsLost >= PathMinLossEvidence && w.PacketsSent > 0 {
		v.Loss = float64(w.PacketsLost) / float64(w.PacketsSent)
	}
	if w.PacketsMissing >= PathMinLossEvidence {
		v.Loss = max(v.Loss, float64(w.PacketsMissing)/float64(w.PacketsReceived+w.PacketsMissing))
	}
	if v.Loss == 0 || w.SmoothedRTT <= 0 {
		return v
	}
	v.Ceiling = 1.22 * pathMSS / (w.SmoothedRTT.Seconds() * math.Sqrt(v.Loss))
	v.LossBound = v.Loss >= PathMinLoss && v.Goodput < PathCeilingFactor*v.Ceiling
	return v
}

// Defaults of [PathMemory].
const (
	// DefaultPathTTL is how long a remembered choice lasts: like an HTTP
	// alt-svc entry, long enough to cover a working session, short enough
	// that a path that healed gets QUIC back.
	DefaultPathTTL = 30 * time.Minute
	// MaxPathEntries bounds the entries kept; the ones expiring first go.
	MaxPathEntries = 256
	// maxPathFile bounds the file read: a larger one is ignored.
	maxPathFile = 64 << 10
)

// PathMemory remembers, per node, the transport bulk traffic should use,
// as HTTP clients cache alt-svc: an entry per node (its NodeID when the
// address pins or resolves one, else host:port) with an expiry. With a
// path it is kept in a small file shared by the processes that use it
// (each alknet client command is one): read on every lookup, replaced
// atomically (mode 0600) on every change, at most [MaxPathEntries]
// entries. Concurrent writers may lose each other's entries; it is a
// cache. A file that cannot be parsed is ignored with a warning and
// replaced on the next change. The zero path keeps the entries in memory.
// It is safe for concurrent use.
type PathMemory struct {
	path string
	// TTL is how long an entry lasts; 0 means DefaultPathTTL.
	TTL time.Duration
	// Logger receives the warnings; nil means slog.Default().
	Logger *slog.Logger

	now     func() time.Time
	mu      sync.Mutex
	entries map[string]pathEntry // the in-memory store when path is ""
	watches sync.Map             // Conn -> *pathWatch, while the conn lives
}

type pathEntry struct {
	network Network
	expires time.Time
}

// NewPathMemory returns the memory kept in path ("" keeps it in memory
// only). The file is created on the first entry.
func NewPathMemory(path string) *PathMemory {
	return &PathMemory{path: path, now: time.Now}
}

// Lookup returns the remembered transport for key, or NetworkAuto when
// there is none or it expired.
func (m *PathMemory) Lookup(key string) Network {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.load()[key]
	if !ok || !m.now().Before(e.expires) {
		return NetworkAuto
	}
	return e.network
}

// Remember records network for key until TTL from now; NetworkAuto forgets
// key.
func (m *PathMemory) Remember(key string, network Network) error {
	return m.rememberFor(key, network, 0)
}

// note is Remember for at most ttl (0: TTL), logging a failure instead of
// returning it.
func (m *PathMemory) note(key string, network Network, ttl time.Duration) {
	if err := m.rememberFor(key, network, ttl); err != nil {
		m.logger().Warn("path memory not written", "err", err)
	}
}

// rememberFor is Remember for at most ttl (0: TTL).
func (m *PathMemory) rememberFor(key string, network Network, ttl time.Duration) error {
	if !validPathKey(key) {
		return fmt.Errorf("core: path memory: bad key %q", Clip(key))
	}
	switch network {
	case NetworkAuto, NetworkQUIC, NetworkTCP:
	default:
		return fmt.Errorf("core: path memory: unknown network %q", network)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	entries := m.load()
	now := m.now()
	for k, e := range entries {
		if !now.Before(e.expires) {
			delete(entries, k)
		}
	}
	if network == NetworkAuto {
		delete(entries, key)
	} else {
		limit := m.TTL
		if limit <= 0 {
			limit = DefaultPathTTL
		}
		if ttl <= 0 || ttl > limit {
			ttl = limit
		}
		entries[key] = pathEntry{network: network, expires: now.Add(ttl)}
	}
	if len(entries) > MaxPathEntries {
		keys := make([]string, 0, len(entries))
		for k := range entries {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return entries[keys[i]].expires.Before(entries[keys[j]].expires) })
		for _, k := range keys[:len(keys)-MaxPathEntries] {
			delete(entries, k)
		}
	}
	return m.store(entries)
}

func (m *PathMemory) logger() *slog.Logger {
	if m.Logger != nil {
		return m.Logger
	}
	return slog.Default()
}

// load returns the entries: a copy of the in-memory ones, or the file's.
func (m *PathMemory) load() map[string]pathEntry {
	entries := make(map[string]pathEntry)
	if m.path == "" {
		for k, e := range m.entries {
			entries[k] = e
		}
		return entries
	}
	f, err := os.Open(m.path)
	if errors.Is(err, os.ErrNotExist) {
		return entries
	}
	if err != nil {
		m.logger().Warn("path memory unreadable; ignored", "file", m.path, "err", err)
		return entries
	}
	defer f.Close()
	data, err := readAtMost(f, maxPathFile)
	if err != nil {
		m.logger().Warn("path memory unreadable; ignored", "file", m.path, "err", err)
		return entries
	}
	parsed, err := parsePathMemory(data)
	if err != nil {
		m.logger().Warn("path memory corrupt; ignored", "file", m.path, "err", err)
		return entries
	}
	return parsed
}

// readAtMost reads f whole, failing if it holds more than limit bytes.
func readAtMost(f *os.File, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return data, nil
}

// validPathKey accepts a NodeID or host:port: printable ASCII, no spaces
// or '#', at most 300 bytes.
func validPathKey(key string) bool {
	if key == "" || len(key) > 300 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' || key[i] == '#' {
			return false
		}
	}
	return true
}

// parsePathMemory reads "key network expiry-unix-seconds" lines; '#'
// starts a comment.
func parsePathMemory(data []byte) (map[string]pathEntry, error) {
	entries := make(map[string]pathEntry)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want key, network, expiry", line)
		}
		if !validPathKey(f[0]) {
			return nil, fmt.Errorf("line %d: bad key", line)
		}
		network := Network(f[1])
		if network != NetworkQUIC && network != NetworkTCP {
			return nil, fmt.Errorf("line %d: unknown network %q", line, Clip(f[1]))
		}
		exp, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || exp < 0 {
			return nil, fmt.Errorf("line %d: bad expiry", line)
		}
		if len(entries) >= MaxPathEntries {
			return nil, fmt.Errorf("more than %d entries", MaxPathEntries)
		}
		entries[f[0]] = pathEntry{network: network, expires: time.Unix(exp, 0)}
	}
	return entries, sc.Err()
}

// store replaces the entries: in memory, or the file through a temporary
// file renamed over it.
func (m *PathMemory) store(entries map[string]pathEntry) error {
	if m.path == "" {
		m.entries = entries
		return nil
	}
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# alknet: transport per node for bulk traffic (key network expiry); see docs/protocols/core.md\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s %d\n", k, entries[k].network, entries[k].expires.Unix())
	}
	dir := filepath.Dir(m.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("core: path memory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(m.path)+".tmp-")
	if err != nil {
		return fmt.Errorf("core: path memory: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("core: path memory: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("core: path memory: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("core: path memory: %w", err)
	}
	if err := os.Rename(tmp.Name(), m.path); err != nil {
		return fmt.Errorf("core: path memory: %w", err)
	}
	return nil
}

// The live judgement of a connection: every pathTick, the last pathWindow
// of it is judged.
var (
	pathTick   = time.Second
	pathWindow = 4 * time.Second
)

// pathWatch is the state of one watched connection.
type pathWatch struct {
	lossBound chan struct{} // closed once a window was loss-bound
	mu        sync.Mutex
	verdict   PathVerdict // the first loss-bound window's, else the last's
	judged    bool
}

// pathKey names the node of a dial in [PathMemory]: its NodeID when the
// address pins one, else host:port.
func pathKey(pin NodeID, hostport string) string {
	if !pin.IsZero() {
		return pin.String()
	}
	return hostport
}

// watch judges c (a QUIC connection to the node named key) until it ends; the
// first loss-bound window remembers TCP for key.
func (m *PathMemory) watch(key string, c Conn, logger *slog.Logger) {
	ps, ok := c.(PathStatser)
	if !ok {
		return
	}
	w := &pathWatch{lossBound: make(chan struct{})}
	m.watches.Store(c, w)
	every, window := pathTick, pathWindow
	go func() {
		defer m.watches.Delete(c)
		tick := time.NewTicker(every)
		defer tick.Stop()
		type snap struct {
			at time.Time
			st PathStats
		}
		hist := []snap{{time.Now(), ps.PathStats()}}
		for {
			select {
			case <-c.Context().Done():
				return
			case now := <-tick.C:
				st := ps.PathStats()
				hist = append(hist, snap{now, st})
				if now.Sub(hist[0].at) < window {
					continue
				}
				for len(hist) > 2 && now.Sub(hist[1].at) >= window {
					hist = hist[1:]
				}
				v := JudgePath(st.Since(hist[0].st), now.Sub(hist[0].at))
				w.mu.Lock()
				w.verdict, w.judged = v, true
				w.mu.Unlock()
				if !v.LossBound {
					continue
				}
				// Remember before telling: a client that redials at
				// the signal must find TCP+TLS remembered.
				if err := m.Remember(key, NetworkTCP); err != nil {
					logger.Warn("path memory", "err", err)
				}
				close(w.lossBound)
				logger.Info("quic is bound by loss on this path; bulk dials of the node use tcp+tls for a while",
					"loss_pct", math.Round(v.Loss*1e4)/100, "goodput_mbps", math.Round(v.Goodput*8/1e5)/10,
					"ceiling_mbps", math.Round(v.Ceiling*8/1e5)/10)
				// Judged: keep the verdict readable until the connection ends.
				<-c.Context().Done()
				return
			}
		}
	}()
}

// LossBound returns a channel closed once the watcher of c (a connection
// the Dialer made with [Dialer.Paths] set and Network auto) judged it
// bound by loss and remembered TCP+TLS for its node: a bulk client that
// can cheaply continue on a new connection redials then, and gets
// TCP+TLS. For any other connection it returns nil (never ready).
func (d *Dialer) LossBound(c Conn) <-chan struct{} {
	if d.Paths == nil {
		return nil
	}
	if w, ok := d.Paths.watches.Load(c); ok {
		return w.(*pathWatch).lossBound
	}
	return nil
}

// PathVerdictOf returns the watcher's judgement of c: the loss-bound
// window once there was one, else the latest window's. ok is false
// while c is not watched or has not run a whole window yet.
func (d *Dialer) PathVerdictOf(c Conn) (v PathVerdict, ok bool) {
	if d.Paths == nil {
		return v, false
	}
	w, found := d.Paths.watches.Load(c)
	if !found {
		return v, false
	}
	pw := w.(*pathWatch)
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return pw.verdict, pw.judged
}

// preferTCP reports whether an auto dial of the node should try TCP+TLS
// first: [Dialer.Paths] remembers it.
func (d *Dialer) preferTCP(key string) bool {
	return d.Network == NetworkAuto && d.Paths != nil && d.Paths.Lookup(key) == NetworkTCP
}

// watchPath starts judging c when the Dialer remembers choices.
func (d *Dialer) watchPath(key string, c Conn) {
	if d.Network == NetworkAuto && d.Paths != nil {
		d.Paths.watch(key, c, c.Logger())
	}
}
