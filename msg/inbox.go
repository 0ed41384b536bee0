package msg

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/alkdev/alknet/core"
)

// Inbox defaults.
const (
	// DefaultInboxMaxCount is the per-recipient message limit when zero.
	DefaultInboxMaxCount = 10000
	// DefaultInboxMaxBytes is the per-recipient byte limit when zero.
	DefaultInboxMaxBytes = 256 << 20
	// DefaultInboxTTL is how long an unacknowledged entry is kept when zero.
	DefaultInboxTTL = 14 * 24 * time.Hour
)

// Inbox errors, matched with errors.Is.
var (
	// ErrQuota: the recipient's inbox is full (count or bytes).
	ErrQuota = errors.New("inbox quota exceeded")
	// ErrInboxClosed: the inbox was closed.
	ErrInboxClosed = errors.New("msg: inbox closed")
)

// Kind says what an inbox entry holds.
type Kind byte

// Entry kinds.
const (
	// KindEnvelope is a sealed envelope (see [Seal]).
	KindEnvelope Kind = 1
	// KindReply is a mixnet reply delivered through a SURB: the SURB id then
	// the still-wrapped payload, which only the SURB's maker can open.
	KindReply Kind = 2
)

// Entry is one stored item of a recipient's inbox.
type Entry struct {
	// ID orders a recipient's entries and names one for Ack.
	ID uint64
	// Received is when the inbox accepted it.
	Received time.Time
	// Kind says what Data holds.
	Kind Kind
	// Data is the envelope or reply.
	Data []byte
}

// InboxConfig configures an Inbox.
type InboxConfig struct {
	// Path is the database file; required. Its directory is created (0700).
	Path string
	// MaxCount caps a recipient's stored entries; zero means
	// DefaultInboxMaxCount.
	MaxCount int
	// MaxBytes caps the bytes of a recipient's stored entries; zero means
	// DefaultInboxMaxBytes.
	MaxBytes int64
	// TTL is how long an unacknowledged entry is kept; zero means
	// DefaultInboxTTL.
	TTL time.Duration
	// Clock returns the time; nil means time.Now.
	Clock func() time.Time
}

// Bucket names.
var (
	bucketInbox   = []byte("inbox")   // recipient → (id → entry)
	bucketUsage   = []byte("usage")   // recipient → count, bytes
	bucketDigests = []byte("digests") // sha256(data) → expiry (dedup of deposits)
	bucketSeen    = []byte("seen")    // sender ‖ message id → expiry
)

// Inbox is a durable store of entries per recipient (bbolt): an entry is
// removed only when its recipient acknowledges it or it expires, and a
// restart loses nothing acknowledged-pending. It is safe for concurrent use.
type Inbox struct {
	db    *bolt.DB
	cfg   InboxConfig
	clock func() time.Time

	mu      sync.Mutex
	waiters map[core.NodeID]chan struct{}
	puts    int
	closed  bool
}

// OpenInbox opens (creating) the inbox database. Another process holding
// it makes OpenInbox fail after a second.
func OpenInbox(cfg InboxConfig) (*Inbox, error) {
	if cfg.Path == "" {
		return nil, errors.New("msg: inbox: no path")
	}
	if cfg.MaxCount < 0 || cfg.MaxBytes < 0 || cfg.TTL < 0 {
		return nil, errors.New("msg: inbox: negative limit")
	}
	if cfg.MaxCount == 0 {
		cfg.MaxCount = DefaultInboxMaxCount
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultInboxMaxBytes
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultInboxTTL
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("msg: inbox: %w", err)
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("msg: inbox %s: %w", cfg.Path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketInbox, bucketUsage, bucketDigests, bucketSeen} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("msg: inbox %s: %w", cfg.Path, err)
	}
	in := &Inbox{db: db, cfg: cfg, clock: clock, waiters: make(map[core.NodeID]chan struct{})}
	if err := in.sweep(); err != nil {
		db.Close()
		return nil, err
	}
	return in, nil
}

// Close closes the database; later calls fail with ErrInboxClosed.
// Closing twice is a no-op.
func (in *Inbox) Close() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.closed = true
	for to, ch := range in.waiters {
		close(ch)
		delete(in.waiters, to)
	}
	return in.db.Close()
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func ms(t time.Time) uint64 { return uint64(t.UnixMilli()) }

// usage reads a recipient's count and bytes.
func usage(tx *bolt.Tx, to []byte) (count, size uint64) {
	v := tx.Bucket(bucketUsage).Get(to)
	if len(v) == 16 {
		return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	}
	return 0, 0
}

func putUsage(tx *bolt.Tx, to []byte, count, size uint64) error {
	if count == 0 {
		return tx.Bucket(bucketUsage).Delete(to)
	}
	return tx.Bucket(bucketUsage).Put(to, append(u64(count), u64(size)...))
}

// entry value: received ms, expiry ms, kind, data.
const entryHeader = 8 + 8 + 1

// Deposit stores data for recipient to. An entry equal to one deposited
// before and not yet expired is refused with ErrDuplicate; a full inbox
// with ErrQuota. Expired entries of to are dropped first.
func (in *Inbox) Deposit(to core.NodeID, kind Kind, data []byte) (Entry, error) {
	return in.deposit(to, kind, data, nil)
}

// DepositMessage stores the envelope of m, which this node opened, for its
// recipient, and in the same transaction records m's id as seen until
// until: a message id already seen from m's sender is refused with
// ErrDuplicate, and the record survives restarts.
func (in *Inbox) DepositMessage(m *Message, env []byte, until time.Time) (Entry, error) {
	return in.deposit(m.To, KindEnvelope, env, &seenMark{key: append(m.From.PublicKey(), m.ID[:]...), until: until})
}

// seenMark is a message id to record with a deposit.
type seenMark struct {
	key   []byte
	until time.Time
}

func (in *Inbox) deposit(to core.NodeID, kind Kind, data []byte, seen *seenMark) (Entry, error) {
	now := in.clock()
	digest := sha256.Sum256(append(append(to.PublicKey(), byte(kind)), data...))
	key := to.PublicKey()
	var e Entry
	err := in.db.Update(func(tx *bolt.Tx) error {
		if err := expireRecipient(tx, key, now); err != nil {
			return err
		}
		if v := tx.Bucket(bucketDigests).Get(digest[:]); len(v) == 8 && binary.BigEndian.Uint64(v) > ms(now) {
			return fmt.Errorf("msg: inbox: %w", ErrDuplicate)
		}
		if seen != nil {
			b := tx.Bucket(bucketSeen)
			if v := b.Get(seen.key); len(v) == 8 && binary.BigEndian.Uint64(v) > ms(now) {
				return fmt.Errorf("msg: inbox: %w", ErrDuplicate)
			}
			if err := b.Put(seen.key, u64(ms(seen.until))); err != nil {
				return err
			}
		}
		count, size := usage(tx, key)
		if count+1 > uint64(in.cfg.MaxCount) || size+uint64(len(data)) > uint64(in.cfg.MaxBytes) {
			return fmt.Errorf("msg: inbox: %w", ErrQuota)
		}
		b, err := tx.Bucket(bucketInbox).CreateBucketIfNotExists(key)
		if err != nil {
			return err
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		expiry := now.Add(in.cfg.TTL)
		v := make([]byte, 0, entryHeader+len(data))
		v = binary.BigEndian.AppendUint64(v, ms(now))
		v = binary.BigEndian.AppendUint64(v, ms(expiry))
		v = append(v, byte(kind))
		v = append(v, data...)
		if err := b.Put(u64(id), v); err != nil {
			return err
		}
		if err := tx.Bucket(bucketDigests).Put(digest[:], u64(ms(expiry))); err != nil {
			return err
		}
		e = Entry{ID: id, Received: time.UnixMilli(int64(ms(now))), Kind: kind, Data: data}
		return putUsage(tx, key, count+1, size+uint64(len(data)))
	})
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return Entry{}, ErrInboxClosed
		}
		return Entry{}, err
	}
	in.mu.Lock()
	if ch, ok := in.waiters[to]; ok {
		close(ch)
		delete(in.waiters, to)
	}
	in.puts++
	sweep := in.puts%256 == 0
	in.mu.Unlock()
	if sweep {
		return e, in.sweep()
	}
	return e, nil
}

// expireRecipient deletes to's entries whose expiry has passed.
func expireRecipient(tx *bolt.Tx, to []byte, now time.Time) error {
	b := tx.Bucket(bucketInbox).Bucket(to)
	if b == nil {
		return nil
	}
	count, size := usage(tx, to)
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) < entryHeader || binary.BigEndian.Uint64(v[8:]) > ms(now) {
			continue
		}
		if err := c.Delete(); err != nil {
			return err
		}
		count--
		size -= uint64(len(v) - entryHeader)
	}
	return putUsage(tx, to, count, size)
}

// sweep drops expired entries of every recipient and expired digests and
// seen ids.
func (in *Inbox) sweep() error {
	now := in.clock()
	err := in.db.Update(func(tx *bolt.Tx) error {
		var recipients [][]byte
		err := tx.Bucket(bucketInbox).ForEachBucket(func(k []byte) error {
			recipients = append(recipients, append([]byte{}, k...))
			return nil
		})
		if err != nil {
			return err
		}
		for _, r := range recipients {
			if err := expireRecipient(tx, r, now); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{bucketDigests, bucketSeen} {
			c := tx.Bucket(name).Cursor()
			for k, v := c.First(); k != nil; k, v = c.Next() {
				if len(v) != 8 || binary.BigEndian.Uint64(v) <= ms(now) {
					if err := c.Delete(); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("msg: inbox: %w", err)
	}
	return nil
}

// List returns up to limit (≤ 0: all) of to's entries with IDs above
// after, oldest first, skipping expired ones.
func (in *Inbox) List(to core.NodeID, after uint64, limit int) ([]Entry, error) {
	now := ms(in.clock())
	var out []Entry
	err := in.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox).Bucket(to.PublicKey())
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(u64(after + 1)); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Next() {
			if len(k) != 8 || len(v) < entryHeader || binary.BigEndian.Uint64(v[8:]) <= now {
				continue
			}
			out = append(out, Entry{
				ID:       binary.BigEndian.Uint64(k),
				Received: time.UnixMilli(int64(binary.BigEndian.Uint64(v))),
				Kind:     Kind(v[16]),
				Data:     append([]byte{}, v[entryHeader:]...),
			})
		}
		return nil
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return nil, ErrInboxClosed
	}
	return out, err
}

// Ack removes to's entries with the given IDs and returns how many
// existed. Unknown IDs are ignored (an ack may be repeated).
func (in *Inbox) Ack(to core.NodeID, ids ...uint64) (int, error) {
	key := to.PublicKey()
	n := 0
	err := in.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketInbox).Bucket(key)
		if b == nil {
			return nil
		}
		count, size := usage(tx, key)
		for _, id := range ids {
			v := b.Get(u64(id))
			if v == nil {
				continue
			}
			if err := b.Delete(u64(id)); err != nil {
				return err
			}
			n++
			count--
			size -= uint64(len(v) - entryHeader)
		}
		return putUsage(tx, key, count, size)
	})
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return 0, ErrInboxClosed
	}
	return n, err
}

// Changed returns a channel closed at the next deposit for to (or when the
// inbox closes): call List after it fires.
func (in *Inbox) Changed(to core.NodeID) <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	ch, ok := in.waiters[to]
	if in.closed {
		ch = make(chan struct{})
		close(ch)
		return ch
	}
	if !ok {
		ch = make(chan struct{})
		in.waiters[to] = ch
	}
	return ch
}

// Follow calls fn with to's entries after the given id, oldest first, then
// with each new one as it arrives, until ctx ends (nil) or fn or the inbox
// fails (that error).
func (in *Inbox) Follow(ctx context.Context, to core.NodeID, after uint64, fn func(Entry) error) error {
	for {
		changed := in.Changed(to)
		es, err := in.List(to, after, maxFetch)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := fn(e); err != nil {
				return err
			}
			after = e.ID
		}
		if len(es) == maxFetch {
			continue
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil
		}
	}
}
