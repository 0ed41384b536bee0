package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

func TestAppendPeer(t *testing.T) {
	k := newTestKeys(t)
	const original = "# my node\n[node]\nlisten = \"[::]:4433\" # keep me\n\n[ssh] # a module section Core does not know\nbanner = \"hi\"\n\n[[peers]]\nid = \"old\"\nkeys = [\"%s\"]"
	off := false
	tests := []struct {
		name    string
		initial string // "" means no file
		mode    os.FileMode
		peer    Peer
		wantErr string
	}{
		{"new file", "", 0, Peer{ID: "laptop", Keys: []Key{KeyFromNodeID(k.nodeID)}, Scopes: []string{"perf"}}, ""},
		{"keeps comments and mode", strings.Replace(original, "%s", k.other.String(), 1), 0o640,
			Peer{ID: "we\"ird\nname", Keys: []Key{mustKey(t, k.rsaLine), mustKey(t, k.edLine)}, Enabled: &off}, ""},
		{"duplicate id", strings.Replace(original, "%s", k.other.String(), 1), 0o600,
			Peer{ID: "old", Keys: []Key{KeyFromNodeID(k.nodeID)}}, `duplicate id`},
		{"key of another peer", strings.Replace(original, "%s", k.other.String(), 1), 0o600,
			Peer{ID: "new", Keys: []Key{KeyFromNodeID(k.other)}}, `already belongs to peer "old"`},
		{"no keys", "", 0, Peer{ID: "new"}, "no keys"},
		{"zero key", "", 0, Peer{ID: "new", Keys: []Key{{}}}, "zero key"},
		{"bad scope", "", 0, Peer{ID: "new", Keys: []Key{KeyFromNodeID(k.nodeID)}, Scopes: []string{"a b"}}, "invalid scope"},
		{"broken file", "[node\n", 0o600, Peer{ID: "new", Keys: []Key{KeyFromNodeID(k.nodeID)}}, ":1:"},
		{"inline peers array", "peers = []\n", 0o600, Peer{ID: "new", Keys: []Key{KeyFromNodeID(k.nodeID)}}, "peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "alknet.toml")
			if tt.initial != "" {
				if err := os.WriteFile(path, []byte(tt.initial), tt.mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil { // umask-proof
					t.Fatal(err)
				}
			}
			err := AppendPeer(path, tt.peer, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("AppendPeer = %v, want an error containing %q", err, tt.wantErr)
				}
				got, _ := os.ReadFile(path)
				if string(got) != tt.initial {
					t.Errorf("refused edit changed the file to %q", got)
				}
				assertNoTempFiles(t, path)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(got), tt.initial) {
				t.Errorf("file now %q, want it to start with the original %q", got, tt.initial)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			wantMode := tt.mode
			if tt.initial == "" {
				wantMode = 0o600
			}
			if fi.Mode().Perm() != wantMode {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), wantMode)
			}
			assertNoTempFiles(t, path)

			var f struct {
				Core
				SSH map[string]any `toml:"ssh"`
			}
			if err := Load(path, &f); err != nil {
				t.Fatalf("appended file does not load: %v\n%s", err, got)
			}
			last := f.Peers[len(f.Peers)-1]
			if last.ID != tt.peer.ID || len(last.Keys) != len(tt.peer.Keys) || enabled(last.Enabled) != enabled(tt.peer.Enabled) {
				t.Errorf("appended peer reads back as %+v, want %+v", last, tt.peer)
			}
		})
	}
}

func TestAppendToken(t *testing.T) {
	_, hash, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "alknet.toml")
	const initial = "# tokens below\n[[tokens]]\nname = \"ci\"\nhash = \"" + "sha256:0000000000000000000000000000000000000000000000000000000000000001" + "\"\n"
	if err := os.WriteFile(path, []byte(initial), 0o600); err != nil {
		t.Fatal(err)
	}
	expires := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := AppendToken(path, Token{Name: "deploy", Hash: hash, Scopes: []string{"perf"}, Expires: expires}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		tok     Token
		wantErr string
	}{
		{"duplicate name", Token{Name: "ci", Hash: core.HashToken("alk_other")}, `token "ci": duplicate name`},
		{"duplicate hash", Token{Name: "other", Hash: hash}, `same hash as token "deploy"`},
		{"no hash", Token{Name: "other"}, "no hash"},
		{"no name", Token{Hash: core.HashToken("alk_x")}, "empty name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := AppendToken(path, tt.tok, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("AppendToken = %v, want an error naming %s and containing %q", err, path, tt.wantErr)
			}
		})
	}
	var c Core
	if err := Load(path, &c); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(got), initial) {
		t.Errorf("comments lost: %q", got)
	}
	if len(c.Tokens) != 2 || c.Tokens[1].Name != "deploy" || !c.Tokens[1].Expires.Equal(expires) || !c.Tokens[1].Hash.Equal(hash) {
		t.Errorf("tokens = %+v", c.Tokens)
	}
}

// TestAppendSymlink checks that an edit replaces the file a link names and
// keeps the link.
func TestAppendSymlink(t *testing.T) {
	k := newTestKeys(t)
	dir := t.TempDir()
	real := filepath.Join(dir, "real.toml")
	link := filepath.Join(dir, "alknet.toml")
	if err := os.WriteFile(real, []byte("# real\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := AppendPeer(link, Peer{ID: "a", Keys: []Key{KeyFromNodeID(k.nodeID)}}, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("link replaced: %v %v", fi, err)
	}
	var c Core
	if err := Load(real, &c); err != nil || len(c.Peers) != 1 {
		t.Errorf("real file: %v, %d peers", err, len(c.Peers))
	}
}

func mustKey(t *testing.T, s string) Key {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func assertNoTempFiles(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}
