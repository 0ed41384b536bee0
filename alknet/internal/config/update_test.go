package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestEditEntries checks each in-place edit of a peer or token against the
// exact text it must leave: only the changed key's bytes move, every comment
// stays.
func TestEditEntries(t *testing.T) {
	k := newTestKeys(t)
	a, b := k.nodeID.String(), k.other.String()
	const hash = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	initial := "# my node\n[node]\nlisten = \"[::]:4433\"\n\n" +
		"# the laptop\n[[peers]] # alice's\n  id = \"alice\"\n  keys = [\"" + a + "\"] # her laptop\n  scopes = [\"perf\"]  # for now\n# after alice\n\n" +
		"[[peers]]\nid = \"bob\"\nkeys = [\"" + b + "\"]\n\n" +
		"[[tokens]]\nname = \"ci\"\nhash = \"" + hash + "\"\n"
	off := false
	tests := []struct {
		name string
		edit func(path string) error
		want string // the text after the edit; "" means initial
		err  string // the error wanted instead
	}{
		{"grant", func(p string) error {
			return UpdatePeer(p, "alice", nil, func(pe *Peer) error { pe.Scopes = append(pe.Scopes, "admin"); return nil })
		}, strings.Replace(initial, `scopes = ["perf"]  # for now`, `scopes = ['perf', 'admin']  # for now`, 1), ""},
		{"first scope", func(p string) error {
			return UpdatePeer(p, "bob", nil, func(pe *Peer) error { pe.Scopes = []string{"perf"}; return nil })
		}, strings.Replace(initial, "keys = [\""+b+"\"]\n", "keys = [\""+b+"\"]\nscopes = ['perf']\n", 1), ""},
		{"last scope revoked", func(p string) error {
			return UpdatePeer(p, "alice", nil, func(pe *Peer) error { pe.Scopes = nil; return nil })
		}, strings.Replace(initial, "  scopes = [\"perf\"]  # for now\n", "", 1), ""},
		{"disable", func(p string) error {
			return UpdatePeer(p, "alice", nil, func(pe *Peer) error { pe.Enabled = &off; return nil })
		}, strings.Replace(initial, "# for now\n", "# for now\n  enabled = false\n", 1), ""},
		{"remove first", func(p string) error { return RemovePeer(p, "alice", nil) },
			strings.Replace(initial, "[[peers]] # alice's\n  id = \"alice\"\n  keys = [\""+a+"\"] # her laptop\n  scopes = [\"perf\"]  # for now\n", "", 1), ""},
		{"remove last peer", func(p string) error { return RemovePeer(p, "bob", nil) },
			strings.Replace(initial, "[[peers]]\nid = \"bob\"\nkeys = [\""+b+"\"]\n\n", "", 1), ""},
		{"remove token at end", func(p string) error { return RemoveToken(p, "ci", nil) },
			strings.TrimSuffix(initial, "\n[[tokens]]\nname = \"ci\"\nhash = \""+hash+"\"\n"), ""},
		{"unknown peer", func(p string) error { return RemovePeer(p, "carol", nil) }, "", `no [[peers]] entry with id "carol"`},
		{"bad scope refused", func(p string) error {
			return UpdatePeer(p, "bob", nil, func(pe *Peer) error { pe.Scopes = []string{"a b"}; return nil })
		}, "", "invalid scope"},
		{"whole-file check", func(p string) error {
			return UpdatePeer(p, "bob", func(string, []byte) error { return errors.New("no good") }, func(pe *Peer) error { pe.Enabled = &off; return nil })
		}, "", "fix them first"},
		{"id is fixed", func(p string) error {
			return UpdatePeer(p, "bob", nil, func(pe *Peer) error { pe.ID = "x"; return nil })
		}, "", "cannot change"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alknet.toml")
			if err := os.WriteFile(path, []byte(initial), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o640); err != nil {
				t.Fatal(err)
			}
			err := tt.edit(path)
			got, _ := os.ReadFile(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				if string(got) != initial {
					t.Errorf("refused edit changed the file:\n%s", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("file now:\n%s\nwant:\n%s", got, tt.want)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, want 0640", fi.Mode().Perm())
			}
			var c Core
			if err := Load(path, &c); err != nil {
				t.Errorf("edited file does not load: %v", err)
			}
			assertNoTempFiles(t, path)
		})
	}
}

// TestEditInlinePeers: peers written as an inline array are refused with a
// reason rather than edited wrongly.
func TestEditInlinePeers(t *testing.T) {
	k := newTestKeys(t)
	path := filepath.Join(t.TempDir(), "alknet.toml")
	text := "peers = [{id = \"a\", keys = [\"" + k.nodeID.String() + "\"]}]\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	err := UpdatePeer(path, "a", nil, func(p *Peer) error { p.Scopes = []string{"perf"}; return nil })
	if err == nil || !strings.Contains(err.Error(), "inline array") {
		t.Errorf("err %v, want one naming the inline array", err)
	}
}

func TestDocumentKeys(t *testing.T) {
	text := "[limits]\nmax_conns = 5\n[[dns.zones]]\nname = \"a\"\n[[dns.zones]]\nname = \"b\"\n[[peers]]\nid = 'x'\nkeys = [\n  \"k0\",\n  \"k1\",\n]\n" +
		"x = [{a = 1}, {a = 2}]\n"
	d, err := parseDocument([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string][2]int{
		"limits":            {1, 1},
		"limits.max_conns":  {2, 1},
		"dns.zones[1]":      {5, 1},
		"dns.zones[1].name": {6, 1},
		"peers[0].keys[1]":  {11, 3},
		"peers[0].x[1].a":   {13, 16},
		"limits.other":      {1, 1}, // the longest prefix written
	} {
		off, ok := d.locate(key)
		if !ok {
			t.Errorf("%s: not found", key)
			continue
		}
		if l, c := d.position(off); l != want[0] || c != want[1] {
			t.Errorf("%s at %d:%d, want %d:%d", key, l, c, want[0], want[1])
		}
	}
	if _, ok := d.locate("nothing.here"); ok {
		t.Error("found a key that is not there")
	}
	var keys []string
	for _, e := range d.exprs {
		keys = append(keys, e.path)
	}
	if want := []string{"limits", "limits.max_conns", "dns.zones[0]", "dns.zones[0].name", "dns.zones[1]", "dns.zones[1].name", "peers[0]", "peers[0].id", "peers[0].keys", "peers[0].x"}; !slices.Equal(keys, want) {
		t.Errorf("expressions %q, want %q", keys, want)
	}
}
