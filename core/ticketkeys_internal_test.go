package core

import (
	"testing"
	"time"
)

// TestTicketKeyRing: a key issues tickets for a period and decrypts them
// until MaxTicketAge after it was made, never longer.
func TestTicketKeyRing(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	now := t0
	r := newTicketKeyRing(func() time.Time { return now })
	k0 := r.keys()[0]
	has := func(ks [][32]byte, k [32]byte) bool {
		for _, x := range ks {
			if x == k {
				return true
			}
		}
		return false
	}
	for _, tc := range []struct {
		at              time.Duration
		issues, accepts bool
	}{
		{0, true, true},
		{ticketKeyPeriod - time.Second, true, true},
		{ticketKeyPeriod, false, true},
		{MaxTicketAge - time.Second, false, true},
		{MaxTicketAge, false, false},
		{3 * MaxTicketAge, false, false},
	} {
		now = t0.Add(tc.at)
		ks := r.keys()
		if got := ks[0] == k0; got != tc.issues {
			t.Errorf("at %v: first key issues tickets %v, want %v", tc.at, got, tc.issues)
		}
		if got := has(ks, k0); got != tc.accepts {
			t.Errorf("at %v: first key accepted %v, want %v", tc.at, got, tc.accepts)
		}
		if len(ks) > 2 {
			t.Errorf("at %v: %d keys", tc.at, len(ks))
		}
	}
	// A node idle for longer than a ticket lives keeps no old key.
	now = now.Add(10 * MaxTicketAge)
	if ks := r.keys(); len(ks) != 1 {
		t.Errorf("after a long idle: %d keys, want 1", len(ks))
	}
}
