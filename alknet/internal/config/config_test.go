package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"golang.org/x/crypto/ssh"
)

// testKeys are real keys made for one test.
type testKeys struct {
	nodeID  core.NodeID // of an Ed25519 key
	edLine  string      // the same Ed25519 key as an authorized_keys line
	rsaLine string      // an RSA key as an authorized_keys line
	rsaWire []byte      // the RSA key in SSH wire format
	other   core.NodeID // an unrelated NodeID
}

func newTestKeys(t *testing.T) testKeys {
	t.Helper()
	var k testKeys
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if k.nodeID, err = core.NodeIDFromPublicKey(pub); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	k.edLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " me@host"
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := ssh.NewPublicKey(&rk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	k.rsaLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(rp))) + " rsa@host"
	k.rsaWire = rp.Marshal()
	pub2, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if k.other, err = core.NodeIDFromPublicKey(pub2); err != nil {
		t.Fatal(err)
	}
	return k
}

// writeFile writes a config file into a fresh temporary directory.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "alknet.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFull(t *testing.T) {
	k := newTestKeys(t)
	_, hash, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, `
[node]
listen = "127.0.0.1:5000"

[limits]
handshake_timeout = "5s"
idle_timeout = "1m"
keep_alive = "-1s"
max_conns = 7
max_conns_per_ip = 3
max_streams_per_conn = 9
drain_timeout = "2s"

[tls]
acme_domains = ["node.example.org"]
acme_email = "ops@example.org"
acme_directory = "https://acme.example.org/dir"

[services]
disable = ["perf"]

[[peers]]
id = "laptop"
keys = ["`+k.nodeID.String()+`", "`+k.rsaLine+`"]
scopes = ["ssh:connect", "perf"]

[[peers]]
id = "old"
keys = ["`+k.other.String()+`"]
enabled = false

[[tokens]]
name = "ci"
hash = "`+hash.String()+`"
scopes = ["perf"]
expires = 2027-01-01T00:00:00Z
`)
	var c Core
	if err := Load(path, &c); err != nil {
		t.Fatal(err)
	}
	if got, want := c.Node.ListenAddr(), "127.0.0.1:5000"; got != want {
		t.Errorf("ListenAddr() = %q, want %q", got, want)
	}
	wantLimits := core.Limits{
		HandshakeTimeout:  5 * time.Second,
		IdleTimeout:       time.Minute,
		KeepAlive:         -time.Second,
		MaxConns:          7,
		MaxConnsPerIP:     3,
		MaxStreamsPerConn: 9,
		DrainTimeout:      2 * time.Second,
	}
	if got := c.EndpointLimits(); got != wantLimits {
		t.Errorf("EndpointLimits() = %+v, want %+v", got, wantLimits)
	}
	if got := strings.Join(c.Services.Disable, ","); got != "perf" {
		t.Errorf("services.disable = %q, want perf", got)
	}
	if c.TLS.ACMEEmail != "ops@example.org" || len(c.TLS.ACMEDomains) != 1 {
		t.Errorf("tls = %+v", c.TLS)
	}
	d, err := c.Directory()
	if err != nil {
		t.Fatal(err)
	}
	peers := d.Peers()
	if len(peers) != 2 {
		t.Fatalf("got %d peers, want 2", len(peers))
	}
	if p := peers[0]; p.ID != "laptop" || p.Disabled || len(p.NodeIDs) != 1 || p.NodeIDs[0] != k.nodeID ||
		len(p.SSHKeys) != 1 || string(p.SSHKeys[0]) != string(k.rsaWire) || strings.Join(p.Scopes, ",") != "ssh:connect,perf" {
		t.Errorf("peers[0] = %+v", p)
	}
	if !peers[1].Disabled {
		t.Errorf("peers[1] enabled, want disabled")
	}
	tokens := d.Tokens()
	want := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	if len(tokens) != 1 || !tokens[0].Hash.Equal(hash) || !tokens[0].Expires.Equal(want) || tokens[0].Disabled {
		t.Errorf("tokens = %+v", tokens)
	}
}

func TestDefaults(t *testing.T) {
	k := newTestKeys(t)
	_, hash, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	var c Core
	doc := "[[peers]]\nid = \"a\"\nkeys = [\"" + k.nodeID.String() + "\"]\n\n[[tokens]]\nname = \"t\"\nhash = \"" + hash.String() + "\"\n"
	if err := Decode("x.toml", []byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if got := c.Node.ListenAddr(); got != DefaultListen {
		t.Errorf("ListenAddr() = %q, want %q", got, DefaultListen)
	}
	if got := c.EndpointLimits(); got != (core.Limits{}) {
		t.Errorf("EndpointLimits() = %+v, want zero (core's defaults)", got)
	}
	d, err := c.Directory()
	if err != nil {
		t.Fatal(err)
	}
	if p := d.Peers()[0]; p.Disabled || len(p.Scopes) != 0 {
		t.Errorf("peer = %+v, want enabled with no scopes", p)
	}
	if tok := d.Tokens()[0]; tok.Disabled || !tok.Expires.IsZero() {
		t.Errorf("token = %+v, want enabled, never expiring", tok)
	}
	// An empty file is a valid config.
	if err := Decode("x.toml", nil, &Core{}); err != nil {
		t.Errorf("empty file: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	err := Load(path, &Core{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load(missing) = %v, want an fs.ErrNotExist naming %s", err, path)
	}
}

// TestDecodeErrors checks that each bad file is reported with its path, the
// line of the problem and the field.
func TestDecodeErrors(t *testing.T) {
	k := newTestKeys(t)
	tests := []struct {
		name  string
		doc   string
		line  int
		field string
	}{
		{"unknown top-level key", "[node]\nlisten = \"[::]:1\"\n\nbogus = 1\n", 4, "node.bogus"},
		{"unknown top-level table", "\n[nodes]\nlisten = \"[::]:1\"\n", 2, "nodes"},
		{"unknown key in limits", "[limits]\nmax_conns = 5\nmax_con = 6\n", 3, "limits.max_con"},
		{"unknown key in peer", "[[peers]]\nid = \"a\"\nkeys = [\"" + k.nodeID.String() + "\"]\n\n[[peers]]\nid = \"b\"\nscope = [\"x\"]\n", 7, "peers.scope"},
		{"wrong type", "[limits]\n\nmax_conns = \"many\"\n", 3, "limits.max_conns"},
		{"wrong type bool", "[[peers]]\nid = \"a\"\nenabled = \"yes\"\n", 3, "peers.enabled"},
		{"bad duration", "[limits]\nidle_timeout = \"10x\"\n", 2, "limits.idle_timeout"},
		{"bad node ID", "[[peers]]\nid = \"a\"\nkeys = [\n  \"" + k.nodeID.String() + "\",\n  \"ybndrfg8ejkmcpqxot1uwisza345h769\",\n]\n", 5, "peers.keys"},
		{"bad ssh key", "[[peers]]\nid = \"a\"\nkeys = [\"ssh-rsa AAAAnot-base64 x\"]\n", 3, "peers.keys"},
		{"ssh key with options", "[[peers]]\nid = \"a\"\nkeys = ['from=\"10.0.0.1\" " + k.edLine + "']\n", 3, "peers.keys"},
		{"bad token hash", "[[tokens]]\nname = \"ci\"\nhash = \"sha256:abc\"\n", 3, "tokens.hash"},
		{"bad expiry", "[[tokens]]\nname = \"ci\"\nexpires = \"soon\"\n", 3, "tokens.expires"},
		{"syntax", "[node]\nlisten = \"[::]:1\"\n[limits\n", 3, ""},
		{"duplicate key", "[node]\nlisten = \"[::]:1\"\nlisten = \"[::]:2\"\n", 3, "listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.doc)
			err := Load(path, &Core{})
			if err == nil {
				t.Fatalf("Load(%q) succeeded, want an error", tt.doc)
			}
			prefix := path + ":" + strconv.Itoa(tt.line) + ":"
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Load(%q) = %q, want prefix %q and field %q", tt.doc, err, prefix, tt.field)
			}
			t.Log(err)
		})
	}
}

func TestKeys(t *testing.T) {
	k := newTestKeys(t)
	tests := []struct {
		name    string
		in      string
		node    core.NodeID
		ssh     []byte
		wantErr string
	}{
		{"node ID", k.nodeID.String(), k.nodeID, nil, ""},
		{"ssh-ed25519 is its node ID", k.edLine, k.nodeID, nil, ""},
		{"ssh-ed25519 without comment", strings.TrimSuffix(k.edLine, " me@host"), k.nodeID, nil, ""},
		{"rsa goes to SSH keys", k.rsaLine, core.NodeID{}, k.rsaWire, ""},
		{"empty", " ", core.NodeID{}, nil, "empty key"},
		{"short node ID", "abc", core.NodeID{}, nil, "length 3"},
		{"garbage line", "ssh-ed25519 !!!", core.NodeID{}, nil, "not a node ID or OpenSSH public key"},
		{"options", "restrict " + k.edLine, core.NodeID{}, nil, "options are not supported"},
		{"two keys", k.edLine + "\n" + k.rsaLine, core.NodeID{}, nil, "more than one key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKey(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseKey(%q) error = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", tt.in, err)
			}
			id, _ := got.NodeID()
			if id != tt.node || string(got.SSHKey()) != string(tt.ssh) {
				t.Errorf("ParseKey(%q) = node %v ssh %x, want node %v ssh %x", tt.in, id, got.SSHKey(), tt.node, tt.ssh)
			}
			if got.String() != strings.TrimSpace(tt.in) {
				t.Errorf("String() = %q, want the input %q", got, tt.in)
			}
		})
	}
}

// TestEd25519SameIdentity checks that a peer listed by its ssh-ed25519 line
// and one listed by its NodeID are the same identity: listing both under two
// peers is a duplicate key.
func TestEd25519SameIdentity(t *testing.T) {
	k := newTestKeys(t)
	doc := "[[peers]]\nid = \"a\"\nkeys = [\"" + k.edLine + "\"]\n\n[[peers]]\nid = \"b\"\nkeys = [\"" + k.nodeID.String() + "\"]\n"
	err := Decode("x.toml", []byte(doc), &Core{})
	if err == nil || !strings.Contains(err.Error(), `already belongs to peer "a"`) {
		t.Errorf("Decode = %v, want the key reported as belonging to peer a", err)
	}
}

func TestValidate(t *testing.T) {
	k := newTestKeys(t)
	_, hash, err := core.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	peer := func(id string, keys ...Key) Peer { return Peer{ID: id, Keys: keys} }
	tests := []struct {
		name string
		c    Core
		want []string // substrings, all expected
	}{
		{"zero value", Core{}, nil},
		{"tls exclusive", Core{TLS: TLS{CertFile: "c", KeyFile: "k", ACMEDomains: []string{"a.example"}}},
			[]string{"tls: cert_file and acme_domains are exclusive"}},
		{"cert without key", Core{TLS: TLS{CertFile: "c"}}, []string{"tls: cert_file and key_file go together"}},
		{"acme email alone", Core{TLS: TLS{ACMEEmail: "x@y"}}, []string{"tls.acme_email: set without acme_domains"}},
		{"acme wildcard and bad directory", Core{TLS: TLS{ACMEDomains: []string{"*.example"}, ACMEDirectory: "http://x"}},
			[]string{"tls.acme_domains[0]", "tls.acme_directory"}},
		{"self-signed names", Core{TLS: TLS{Names: []string{"node.example.org", "192.0.2.1", "2001:db8::1"}}}, nil},
		{"names with a certificate, a wildcard, a port", Core{TLS: TLS{CertFile: "c", KeyFile: "k", Names: []string{"*.example.org", "a.example:443", ""}}},
			[]string{"tls.names: only for the self-signed certificate", "tls.names[0]", "tls.names[1]", "tls.names[2]"}},
		{"listen not host:port", Core{Node: Node{Listen: "4433"}}, []string{"node.listen"}},
		{"listen bad port", Core{Node: Node{Listen: "[::]:http"}}, []string{"node.listen"}},
		{"limits", Core{Limits: Limits{MaxConns: -1, IdleTimeout: Duration{-time.Second}}},
			[]string{"limits.max_conns", "limits.idle_timeout"}},
		{"negative keep_alive is allowed", Core{Limits: Limits{KeepAlive: Duration{-time.Second}}}, nil},
		{"duplicate peer id", Core{Peers: []Peer{peer("a", KeyFromNodeID(k.nodeID)), peer("a", KeyFromNodeID(k.other))}},
			[]string{`peer "a": duplicate id`}},
		{"zero key", Core{Peers: []Peer{peer("a", Key{})}}, []string{"peers[0].keys[0]: empty key"}},
		{"bad scope", Core{Peers: []Peer{{ID: "a", Keys: []Key{KeyFromNodeID(k.nodeID)}, Scopes: []string{"a*b"}}}},
			[]string{"invalid scope"}},
		{"duplicate token", Core{Tokens: []Token{{Name: "t", Hash: hash}, {Name: "t", Hash: core.HashToken("x")}}},
			[]string{`token "t": duplicate name`}},
		{"everything at once", Core{Node: Node{Listen: "x"}, TLS: TLS{CertFile: "c"}, Limits: Limits{MaxConns: -1}},
			[]string{"node.listen", "tls:", "limits.max_conns"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestDecodeValidateNamesFile checks that a validation error from Decode
// names the file, line and column of its key on every line.
func TestDecodeValidateNamesFile(t *testing.T) {
	doc := "[node]\nlisten = \"nope\"\n[tls]\ncert_file = \"c\"\n"
	err := Decode("/etc/alknet.toml", []byte(doc), &Core{})
	if err == nil {
		t.Fatal("Decode succeeded, want validation errors")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{"/etc/alknet.toml:2:1: node.listen: ", "/etc/alknet.toml:3:1: tls: "}
	if len(lines) != len(want) {
		t.Fatalf("Decode = %q, want one line per problem", err)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, want[i]) {
			t.Errorf("line %q does not start %q", l, want[i])
		}
	}
}

// TestDecodeEmbedded checks the CLI's use: a struct embedding Core plus a
// module section decodes strictly, and Core's Validate is promoted.
func TestDecodeEmbedded(t *testing.T) {
	type file struct {
		Core
		SSH struct {
			Banner string `toml:"banner"`
		} `toml:"ssh"`
	}
	var f file
	if err := Decode("x.toml", []byte("[node]\nlisten = \"[::]:1\"\n[ssh]\nbanner = \"hi\"\n"), &f); err != nil {
		t.Fatal(err)
	}
	if f.SSH.Banner != "hi" || f.Node.Listen != "[::]:1" {
		t.Errorf("decoded %+v", f)
	}
	err := Decode("x.toml", []byte("[ssh]\nbanner = \"hi\"\nbaner = \"x\"\n"), &f)
	if err == nil || !strings.Contains(err.Error(), "x.toml:3:1: ssh.baner: unknown key") {
		t.Errorf("unknown module key: %v", err)
	}
	err = Decode("x.toml", []byte("[tls]\ncert_file = \"c\"\n"), &f)
	if err == nil || !strings.Contains(err.Error(), "key_file") {
		t.Errorf("promoted Validate not called: %v", err)
	}
}
