package core

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"
)

func testNodeID(t *testing.T, seed byte) NodeID {
	t.Helper()
	key := ed25519.NewKeyFromSeed(append(make([]byte, 31), seed))
	id, err := NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNodeIDText(t *testing.T) {
	id := testNodeID(t, 1)
	s := id.String()
	if len(s) != NodeIDLen {
		t.Fatalf("len %d", len(s))
	}
	back, err := ParseNodeID(s)
	if err != nil || back != id {
		t.Fatalf("round trip: %v %v", back, err)
	}
	// The all-zero key encodes as 52 'y's (z-base-32 zero digit).
	if got := (NodeID{key: [32]byte{}}).String(); got != "-" {
		t.Errorf("zero NodeID prints %q", got)
	}
	for _, bad := range []string{
		"",
		s[:51],
		s + "y",
		strings.ToUpper(s),
		s[:51] + "l", // 'l' is not in the alphabet
		strings.Repeat("9", 52),
		strings.Repeat("y", 52), // the all-zero key: "no identity", no one's key
	} {
		if _, err := ParseNodeID(bad); err == nil {
			t.Errorf("ParseNodeID(%q) accepted", bad)
		}
	}
	if _, err := NodeIDFromPublicKey(make([]byte, 32)); err == nil {
		t.Error("NodeIDFromPublicKey accepted the all-zero key")
	}
	// The last character carries 4 padding bits: only one of each 16
	// characters sharing the first bit is canonical.
	accepted := 0
	for _, c := range "ybndrfg8ejkmcpqxot1uwisza345h769" {
		if _, err := ParseNodeID(s[:51] + string(c)); err == nil {
			accepted++
		}
	}
	if accepted != 2 {
		t.Errorf("%d last characters accepted, want 2 (one per value of the last bit)", accepted)
	}
}

func TestTokens(t *testing.T) {
	tok, hash, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) != len(TokenPrefix)+52 {
		t.Fatalf("token %q", tok)
	}
	if !HashToken(tok).Equal(hash) {
		t.Fatal("hash mismatch")
	}
	parsed, err := ParseTokenHash(hash.String())
	if err != nil || !parsed.Equal(hash) {
		t.Fatalf("hash text round trip: %v", err)
	}
	for _, bad := range []string{"", "sha256:", "sha256:zz" + strings.Repeat("0", 62), "md5:" + strings.Repeat("0", 64), strings.Repeat("0", 64)} {
		if _, err := ParseTokenHash(bad); err == nil {
			t.Errorf("ParseTokenHash(%q) accepted", bad)
		}
	}

	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expiredTok, expiredHash, _ := NewToken()
	disabledTok, disabledHash, _ := NewToken()
	dir, err := NewDirectory(nil, []TokenEntry{
		{Name: "ci", Hash: hash, Scopes: []string{"perf"}, Expires: now.Add(time.Hour)},
		{Name: "old", Hash: expiredHash, Expires: now},
		{Name: "off", Hash: disabledHash, Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	live := NewLiveDirectory(dir, func() time.Time { return clock })
	unknown, _, _ := NewToken()
	for _, tc := range []struct {
		name   string
		token  string
		wantID string
	}{
		{"valid", tok, "ci"},
		{"unknown", unknown, ""},
		{"expired", expiredTok, ""},
		{"disabled", disabledTok, ""},
		{"no prefix", strings.TrimPrefix(tok, TokenPrefix), ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, ok := live.ByToken(tc.token)
			if ok != (tc.wantID != "") || id.ID != tc.wantID {
				t.Errorf("ByToken = %q, %v; want %q", id.ID, ok, tc.wantID)
			}
		})
	}
	id, _ := live.ByToken(tok)
	if !live.Valid(id) {
		t.Error("valid token identity reported invalid")
	}
	clock = now.Add(2 * time.Hour) // the token expires while in use
	if live.Valid(id) {
		t.Error("expired token identity still valid")
	}
}

func TestAccessControl(t *testing.T) {
	alice := &Identity{ID: "alice", Scopes: []string{"perf", "call:fs/*"}}
	bob := &Identity{ID: "bob"}
	for _, tc := range []struct {
		name string
		ac   AccessControl
		id   *Identity
		want error
	}{
		{"zero admits authenticated", AccessControl{}, bob, nil},
		{"zero refuses anonymous", AccessControl{}, nil, ErrUnauthenticated},
		{"public admits anonymous", AccessControl{Public: true}, nil, nil},
		{"public admits authenticated", AccessControl{Public: true}, bob, nil},
		{"all scopes held", AccessControl{AllScopes: []string{"perf"}}, alice, nil},
		{"all scopes missing", AccessControl{AllScopes: []string{"perf", "admin"}}, alice, ErrForbidden},
		{"any scope held", AccessControl{AnyScopes: []string{"admin", "perf"}}, alice, nil},
		{"any scope missing", AccessControl{AnyScopes: []string{"admin"}}, alice, ErrForbidden},
		{"wildcard grant", AccessControl{AllScopes: []string{"call:fs/stat"}}, alice, nil},
		{"wildcard is a prefix only", AccessControl{AllScopes: []string{"call:git/x"}}, alice, ErrForbidden},
		{"scopes refuse anonymous", AccessControl{AllScopes: []string{"perf"}}, nil, ErrUnauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.ac.Check(tc.id); !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("Check(%v) = %v, want %v", tc.id, err, tc.want)
			}
		})
	}
}

func TestDirectoryValidation(t *testing.T) {
	a, b := testNodeID(t, 1), testNodeID(t, 2)
	_, h, _ := NewToken()
	for _, tc := range []struct {
		name   string
		peers  []PeerEntry
		tokens []TokenEntry
		want   string
	}{
		{"duplicate peer id", []PeerEntry{{ID: "x", NodeIDs: []NodeID{a}}, {ID: "x", NodeIDs: []NodeID{b}}}, nil, "duplicate id"},
		{"key in two peers", []PeerEntry{{ID: "x", NodeIDs: []NodeID{a}}, {ID: "y", NodeIDs: []NodeID{a}}}, nil, "already belongs"},
		{"peer without keys", []PeerEntry{{ID: "x"}}, nil, "no keys"},
		{"bad scope", []PeerEntry{{ID: "x", NodeIDs: []NodeID{a}, Scopes: []string{"a*b"}}}, nil, "invalid scope"},
		{"duplicate token hash", nil, []TokenEntry{{Name: "a", Hash: h}, {Name: "b", Hash: h}}, "same hash"},
		{"token without hash", nil, []TokenEntry{{Name: "a"}}, "no hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewDirectory(tc.peers, tc.tokens)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParseNodeID checks that parsing never panics and that every accepted
// text is the canonical form of the key it parses to.
func FuzzParseNodeID(f *testing.F) {
	f.Add("ra8qwatp8yokz6aammntquugwzr947zosqzhgs8adhmkoqb11e4y") // valid
	f.Add("ra8qwatp8yokz6aammntquugwzr947zosqzhgs8adhmkoqb11e4o") // non-zero trailing bits
	f.Add("ra8qwatp8yokz6aammntquugwzr947zosqzhgs8adhmkoqb11e4")  // one short
	f.Add("RA8QWATP8YOKZ6AAMMNTQUUGWZR947ZOSQZHGS8ADHMKOQB11E4Y") // upper case
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseNodeID(s)
		if err != nil {
			return
		}
		if id.String() != s {
			t.Fatalf("accepted %q, canonical form %q", s, id.String())
		}
	})
}

// FuzzParseTokenHash checks that parsing never panics and round-trips.
func FuzzParseTokenHash(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("ab", 32)) // valid
	f.Add("sha256:" + strings.Repeat("AB", 32)) // upper-case hex
	f.Add("sha256:" + strings.Repeat("a", 63))  // odd length
	f.Add("sha256")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseTokenHash(s)
		if err != nil {
			return
		}
		if back, err := ParseTokenHash(h.String()); err != nil || !back.Equal(h) {
			t.Fatalf("round trip of %q failed", s)
		}
	})
}

func TestValidAfterReload(t *testing.T) {
	a := testNodeID(t, 1)
	rsa := []byte("ssh-rsa wire form")
	base := []PeerEntry{
		{ID: "laptop", NodeIDs: []NodeID{a}, Scopes: []string{"perf", "ssh:connect"}},
		{ID: "box", SSHKeys: [][]byte{rsa}, Scopes: []string{"ssh:connect"}},
	}
	for _, tc := range []struct {
		name        string
		next        []PeerEntry
		laptop, box bool
	}{
		{"unchanged", base, true, true},
		{"scope added", []PeerEntry{{ID: "laptop", NodeIDs: []NodeID{a}, Scopes: []string{"perf", "ssh:connect", "admin"}}, base[1]}, true, true},
		{"scope removed", []PeerEntry{{ID: "laptop", NodeIDs: []NodeID{a}, Scopes: []string{"perf"}}, base[1]}, false, true},
		{"ssh key removed", []PeerEntry{base[0], {ID: "box", SSHKeys: [][]byte{[]byte("other")}}}, true, false},
		{"renamed", []PeerEntry{{ID: "laptop2", NodeIDs: []NodeID{a}, Scopes: base[0].Scopes}, base[1]}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDirectory(base, nil)
			if err != nil {
				t.Fatal(err)
			}
			live := NewLiveDirectory(d, nil)
			laptop, _ := live.ByNodeID(a)
			box, ok := live.BySSHKey(rsa)
			if !ok {
				t.Fatal("ssh key not found")
			}
			next, err := NewDirectory(tc.next, nil)
			if err != nil {
				t.Fatal(err)
			}
			live.Store(next)
			if got := live.Valid(laptop); got != tc.laptop {
				t.Errorf("laptop valid = %v, want %v", got, tc.laptop)
			}
			if got := live.Valid(box); got != tc.box {
				t.Errorf("box valid = %v, want %v", got, tc.box)
			}
		})
	}
	if _, err := NewDirectory([]PeerEntry{{ID: "x", SSHKeys: [][]byte{rsa}}, {ID: "y", SSHKeys: [][]byte{rsa}}}, nil); err == nil {
		t.Error("an SSH key in two peers was accepted")
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("a", 63) + "é" + "tail" // é spans bytes 63-64
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"short", "short"},
		{strings.Repeat("x", 64), strings.Repeat("x", 64)},
		{strings.Repeat("x", 65), strings.Repeat("x", 64) + "…"},
		{long, strings.Repeat("a", 63) + "…"},
	} {
		if got := Clip(tc.in); got != tc.want {
			t.Errorf("Clip(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
