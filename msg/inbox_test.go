package msg

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func openInbox(t testing.TB, cfg InboxConfig) *Inbox {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "inbox.db")
	}
	in, err := OpenInbox(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return in
}

func TestInboxDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inbox.db")
	bob := newParty(t).id
	in := openInbox(t, InboxConfig{Path: path})
	for _, d := range []string{"one", "two", "three"} {
		if _, err := in.Deposit(bob, KindEnvelope, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	in.Close()
	in = openInbox(t, InboxConfig{Path: path})
	es, err := in.List(bob, 0, 0)
	if err != nil || len(es) != 3 || string(es[1].Data) != "two" {
		t.Fatalf("after restart: %v %d entries", err, len(es))
	}
	if n, err := in.Ack(bob, es[0].ID, es[1].ID, 999); err != nil || n != 2 {
		t.Fatalf("ack: %d %v", n, err)
	}
	es, _ = in.List(bob, 0, 0)
	if len(es) != 1 || string(es[0].Data) != "three" {
		t.Fatalf("after ack: %d entries", len(es))
	}
	if es, _ := in.List(bob, es[0].ID, 0); len(es) != 0 {
		t.Fatal("List after the last id returned entries")
	}
	if es, _ := in.List(newParty(t).id, 0, 0); len(es) != 0 {
		t.Fatal("another recipient sees entries")
	}
}

func TestInboxQuotas(t *testing.T) {
	bob := newParty(t).id
	t.Run("count", func(t *testing.T) {
		in := openInbox(t, InboxConfig{MaxCount: 2})
		in.Deposit(bob, KindEnvelope, []byte("a"))
		in.Deposit(bob, KindEnvelope, []byte("b"))
		if _, err := in.Deposit(bob, KindEnvelope, []byte("c")); !errors.Is(err, ErrQuota) {
			t.Fatalf("third: %v", err)
		}
		if _, err := in.Deposit(newParty(t).id, KindEnvelope, []byte("c")); err != nil {
			t.Fatalf("quota is per recipient: %v", err)
		}
		es, _ := in.List(bob, 0, 0)
		in.Ack(bob, es[0].ID)
		if _, err := in.Deposit(bob, KindEnvelope, []byte("c")); err != nil {
			t.Fatalf("after ack: %v", err)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		in := openInbox(t, InboxConfig{MaxBytes: 10})
		if _, err := in.Deposit(bob, KindEnvelope, bytes.Repeat([]byte("x"), 8)); err != nil {
			t.Fatal(err)
		}
		if _, err := in.Deposit(bob, KindEnvelope, []byte("xyz")); !errors.Is(err, ErrQuota) {
			t.Fatalf("over bytes: %v", err)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		in := openInbox(t, InboxConfig{})
		in.Deposit(bob, KindEnvelope, []byte("same"))
		if _, err := in.Deposit(bob, KindEnvelope, []byte("same")); !errors.Is(err, ErrDuplicate) {
			t.Fatalf("replayed deposit: %v", err)
		}
	})
}

func TestInboxExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	bob := newParty(t).id
	in := openInbox(t, InboxConfig{TTL: time.Hour, MaxCount: 1, Clock: clock})
	in.Deposit(bob, KindEnvelope, []byte("old"))
	now = now.Add(2 * time.Hour)
	if es, _ := in.List(bob, 0, 0); len(es) != 0 {
		t.Fatal("expired entry listed")
	}
	// The expired entry no longer counts against the quota.
	if _, err := in.Deposit(bob, KindEnvelope, []byte("new")); err != nil {
		t.Fatal(err)
	}
	// And the same bytes may come again once their digest expired.
	now = now.Add(2 * time.Hour)
	if _, err := in.Deposit(bob, KindEnvelope, []byte("new")); err != nil {
		t.Fatal(err)
	}
}

func TestInboxChanged(t *testing.T) {
	in := openInbox(t, InboxConfig{})
	bob := newParty(t).id
	ch := in.Changed(bob)
	select {
	case <-ch:
		t.Fatal("fired before a deposit")
	default:
	}
	in.Deposit(bob, KindEnvelope, []byte("x"))
	<-ch
}
