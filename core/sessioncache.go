package core

import (
	"container/list"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultMaxSessions bounds a [SessionCache] made with max <= 0.
const DefaultMaxSessions = 256

// maxSessionFile is the largest session file a SessionCache reads; a
// larger one is not ours (256 entries take well under 1 MiB).
const maxSessionFile = 4 << 20

// sessionFileVersion is written in the file; another version is ignored.
const sessionFileVersion = 1

// SessionCache keeps the TLS 1.3 session tickets nodes gave a [Dialer], so
// that a later connection to the same node resumes its session: one
// signature and certificate exchange fewer, and, over TCP, no extra round
// trip lost to a slow first flight. It is a [tls.ClientSessionCache] shared
// by all of a Dialer's dials, keyed by network, the client's own key, the
// node's pinned key, the address and the ALPN: a ticket carries the
// identity the client proved when it was issued, so it is only offered
// under that same identity.
//
// With a path, the cache is a file (mode 0600, replaced atomically on each
// change) so that separate processes (each alknet command) benefit. A
// ticket and its session state are key material: whoever reads the file
// can resume the sessions as the client until the tickets expire
// ([MaxTicketAge]). The file is never logged; a file that does not parse
// is ignored with a warning and replaced on the next change.
//
// A SessionCache is safe for concurrent use.
type SessionCache struct {
	path   string
	max    int
	logger *slog.Logger
	now    func() time.Time

	mu      sync.Mutex
	loaded  bool
	lru     *list.List               // *sessionEntry, most recently used first
	byKey   map[string]*list.Element // into lru
	deleted map[string]bool          // keys this process dropped, not merged back from the file
	inFile  map[string]time.Time     // when the ticket the file holds for a key arrived
}

// resaveAfter is how old a key's ticket in the file gets before a newer
// one for that key is written out. A node gives a new ticket on every
// connection; a ticket is good for hours ([MaxTicketAge]), so writing
// each one (a read, a merge and a rename, on the handshake's path) would
// only slow down a client that connects often, such as a TCP+TLS
// forward, which connects once per forwarded connection.
const resaveAfter = 10 * time.Minute

// sessionEntry is one cached session, serialized with crypto/tls's own
// encoding (tls.SessionState.Bytes).
type sessionEntry struct {
	Key    string    `json:"key"`
	At     time.Time `json:"at"` // when the ticket arrived
	Ticket []byte    `json:"ticket"`
	State  []byte    `json:"state"`
}

type sessionFile struct {
	Version  int             `json:"version"`
	Sessions []*sessionEntry `json:"sessions"` // most recently used first
}

// NewSessionCache returns a cache of at most max sessions (<= 0:
// [DefaultMaxSessions]) kept in the file at path, or in memory only when
// path is "". It reads the file on first use. logger (nil:
// slog.Default()) gets a warning when the file cannot be read or written.
func NewSessionCache(path string, max int, logger *slog.Logger) *SessionCache {
	if max <= 0 {
		max = DefaultMaxSessions
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &SessionCache{
		path: path, max: max, logger: logger, now: time.Now,
		lru: list.New(), byKey: map[string]*list.Element{}, deleted: map[string]bool{},
		inFile: map[string]time.Time{},
	}
}

// Len returns the number of sessions held.
func (c *SessionCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadLocked()
	return c.lru.Len()
}

// get returns the session stored under key, if it is young enough.
func (c *SessionCache) get(key string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadLocked()
	el, ok := c.byKey[key]
	if !ok {
		return nil, false
	}
	e := el.Value.(*sessionEntry)
	if c.expired(e) {
		c.removeLocked(el)
		return nil, false
	}
	st, err := tls.ParseSessionState(e.State)
	if err != nil {
		c.removeLocked(el)
		return nil, false
	}
	cs, err := tls.NewResumptionState(e.Ticket, st)
	if err != nil {
		c.removeLocked(el)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return cs, true
}

// put stores cs under key; a nil cs (crypto/tls's way to drop a session
// that failed) removes the entry.
func (c *SessionCache) put(key string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadLocked()
	if cs == nil {
		if el, ok := c.byKey[key]; ok {
			c.removeLocked(el)
			c.deleted[key] = true
			c.saveLocked()
		}
		return
	}
	ticket, st, err := cs.ResumptionState()
	if err != nil || st == nil {
		return
	}
	state, err := st.Bytes()
	if err != nil {
		return
	}
	e := &sessionEntry{Key: key, At: c.now(), Ticket: ticket, State: state}
	if el, ok := c.byKey[key]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
	} else {
		c.byKey[key] = c.lru.PushFront(e)
	}
	delete(c.deleted, key)
	c.trimLocked()
	if at, ok := c.inFile[key]; ok {
		if age := e.At.Sub(at); age >= 0 && age < resaveAfter {
			return // the file's ticket still serves; the next save takes this one
		}
	}
	c.saveLocked()
}

func (c *SessionCache) expired(e *sessionEntry) bool {
	age := c.now().Sub(e.At)
	return age < 0 || age >= MaxTicketAge
}

func (c *SessionCache) removeLocked(el *list.Element) {
	delete(c.byKey, el.Value.(*sessionEntry).Key)
	c.lru.Remove(el)
}

func (c *SessionCache) trimLocked() {
	for c.lru.Len() > c.max {
		c.removeLocked(c.lru.Back())
	}
}

// loadLocked reads the file once.
func (c *SessionCache) loadLocked() {
	if c.loaded {
		return
	}
	c.loaded = true
	for _, e := range c.readFile() {
		if _, dup := c.byKey[e.Key]; dup || c.expired(e) {
			continue
		}
		c.byKey[e.Key] = c.lru.PushBack(e)
		c.inFile[e.Key] = e.At
	}
	c.trimLocked()
}

// readFile returns the file's entries, most recent first; nothing, with a
// warning, when it is unreadable or not a session file.
func (c *SessionCache) readFile() []*sessionEntry {
	if c.path == "" {
		return nil
	}
	f, err := os.Open(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		c.logger.Warn("session cache unreadable; dials make full handshakes", "file", c.path, "err", err)
		return nil
	}
	defer f.Close()
	var sf sessionFile
	dec := json.NewDecoder(&limitedReader{f, maxSessionFile})
	if err := dec.Decode(&sf); err != nil || sf.Version != sessionFileVersion {
		if err == nil {
			err = fmt.Errorf("version %d, want %d", sf.Version, sessionFileVersion)
		}
		c.logger.Warn("session cache ignored: not a session file; it is replaced on the next ticket", "file", c.path, "err", err)
		return nil
	}
	out := sf.Sessions[:0]
	for _, e := range sf.Sessions {
		if e != nil && e.Key != "" && len(e.Ticket) > 0 && len(e.State) > 0 {
			out = append(out, e)
		}
	}
	return out
}

// saveLocked writes the cache, merged with what other processes wrote
// since it was read, to a temporary file renamed over the old one.
func (c *SessionCache) saveLocked() {
	if c.path == "" {
		return
	}
	for _, e := range c.readFile() {
		if _, ok := c.byKey[e.Key]; ok || c.deleted[e.Key] || c.expired(e) {
			continue
		}
		c.byKey[e.Key] = c.lru.PushBack(e)
	}
	c.trimLocked()
	sf := sessionFile{Version: sessionFileVersion}
	for el := c.lru.Front(); el != nil; el = el.Next() {
		sf.Sessions = append(sf.Sessions, el.Value.(*sessionEntry))
	}
	if err := c.writeFile(&sf); err != nil {
		c.logger.Warn("session cache not saved", "file", c.path, "err", err)
		return
	}
	clear(c.inFile)
	for _, e := range sf.Sessions {
		c.inFile[e.Key] = e.At
	}
}

func (c *SessionCache) writeFile(sf *sessionFile) error {
	data, err := json.Marshal(sf)
	if err != nil {
		return err
	}
	dir := filepath.Dir(c.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(c.path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: no such file
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), c.path)
}

// limitedReader fails, rather than truncating, past n bytes.
type limitedReader struct {
	f *os.File
	n int64
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, fmt.Errorf("larger than %d bytes", maxSessionFile)
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.f.Read(p)
	r.n -= int64(n)
	return n, err
}

// sessionView is the [tls.ClientSessionCache] of one dial: it files the
// session under the dial's key, whatever name crypto/tls asks for.
type sessionView struct {
	cache *SessionCache
	key   string
}

func (v sessionView) Get(string) (*tls.ClientSessionState, bool) { return v.cache.get(v.key) }
func (v sessionView) Put(_ string, cs *tls.ClientSessionState)   { v.cache.put(v.key, cs) }

// sessionKey names the sessions of a dial: a ticket resumes only the same
// client key with the same node (pinned key or, unpinned, the address's
// known key), address and ALPN; [withSessions] adds the transport.
func sessionKey(client, pin NodeID, hostport, alpn string) string {
	who, node := "anon", "known"
	if !client.IsZero() {
		who = client.String()
	}
	if !pin.IsZero() {
		node = pin.String()
	}
	return fmt.Sprintf("%s %s@%s %s", who, node, hostport, alpn)
}

// withSessions returns cfg, cloned, filing its sessions under network when
// the dial uses a session cache; cfg itself otherwise.
func withSessions(cfg *tls.Config, network Network) *tls.Config {
	v, ok := cfg.ClientSessionCache.(sessionView)
	if !ok {
		return cfg
	}
	cfg = cfg.Clone()
	cfg.ClientSessionCache = sessionView{v.cache, string(network) + " " + v.key}
	return cfg
}

// Resumed reports whether c's TLS handshake resumed an earlier session
// (no certificates were exchanged; the peer's key is the one it proved
// when the session began). False for connections that are not TLS.
func Resumed(c Conn) bool {
	switch c := c.(type) {
	case QUICConn:
		return c.QUIC().ConnectionState().TLS.DidResume
	case *boundConn:
		return Resumed(c.Conn)
	case *singleConn:
		s := c.stream.Stream
		if m, ok := s.(movedStream); ok {
			s = m.Stream
		}
		if t, ok := s.(tlsStream); ok {
			return t.ConnectionState().DidResume
		}
	}
	return false
}
