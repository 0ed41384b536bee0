package node

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh"
)

// TestExampleFile checks that docs/alknet.example.toml, which shows every
// key, is a valid config whose values are the documented defaults where it
// says so.
func TestExampleFile(t *testing.T) {
	f, err := LoadConfig("../../../docs/alknet.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.Directory()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Peers()) == 0 || len(d.Tokens()) == 0 {
		t.Errorf("example has %d peers and %d tokens, want some of each", len(d.Peers()), len(d.Tokens()))
	}
	if f.EndpointLimits() != core.DefaultLimits() {
		t.Errorf("example limits %+v differ from core.DefaultLimits() %+v", f.EndpointLimits(), core.DefaultLimits())
	}
	if f.Node.ListenAddr() != config.DefaultListen {
		t.Errorf("example listen %q, want the default %q", f.Node.ListenAddr(), config.DefaultListen)
	}
	pol := f.SSH.Policy.policy()
	if len(pol.Forward) == 0 || pol.Forward[0].Action != ssh.Deny || len(pol.CertAuthorities) != 1 {
		t.Errorf("example ssh policy parsed as %+v", pol)
	}
	if f.SFTP.MaxHandles != 256 || f.SFTP.Roots["backup-bot"] != "/srv/backups" {
		t.Errorf("example sftp section parsed as %+v", f.SFTP)
	}
}

// TestServiceSectionErrors checks that bad service sections are refused with
// the file, line or field named.
func TestServiceSectionErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[ssh.policy]\nforward = [\"permit *\"]\n", `x.toml:2:`},
		{"[ssh.policy]\nforward = [\"allow 10.0.0.0/33\"]\n", `x.toml:2:`},
		{"[[ssh.policy.cert_authorities]]\nname = \"a\"\nkey = \"nonsense\"\n", `x.toml:3:`},
		{"[[ssh.policy.cert_authorities]]\nname = \"a\"\n", `no key`},
		{"[ssh.policy]\nenv = [\"A=B\"]\n", `env "A=B"`},
		{"[ssh]\ntcp_listen = \"nope\"\n", `ssh.tcp_listen`},
		{"[ssh]\nmax_channels = -1\n", `ssh.max_channels`},
		{"[ssh]\nbogus = 1\n", `x.toml:2:1: ssh.bogus`},
		{"[sftp]\nroot = \"relative\"\n", `sftp.root`},
		{"[sftp.roots]\nbob = \"rel\"\n", `sftp.roots.bob`},
		{"[sftp]\nmax_sessions_per_identity = -1\n", `sftp.max_sessions_per_identity: -1 out of range`},
		{"[sftp]\nmax_handles = 300\nmax_handles_per_identity = 200\n", `sftp.max_handles: 300 exceeds sftp.max_handles_per_identity 200`},
		{"[git]\nbackend = \"cgit\"\n", `git.backend: "cgit"`},
		{"[msg]\ndirectories = [\"nope\"]\n", `msg.directories[0]`},
		{"[msg]\nepoch_length = \"1m\"\nepoch_grace = \"1m\"\n", `epoch grace`},
		{"[msg.mix]\ncover_rate = 1.0\n", `msg.mix.cover_rate`},
		{"[msg.directory]\npublish = true\n", `msg.directory: msg: PublisherConfig.Mixes: no mix in layer 0`},
		{"[msg.directory]\npublish = true\n[[msg.directory.mixes]]\naddr = \"x\"\n", `want NODEID@host:port`},
	} {
		var f Config
		err := config.Decode("x.toml", []byte(tc.text), &f)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
}

// TestStaticChanged checks which changes need a restart.
func TestStaticChanged(t *testing.T) {
	base := func() *Config {
		f := &Config{}
		f.SSH.Exec = true
		return f
	}
	dyn := base()
	dyn.Peers = []config.Peer{{ID: "a"}}
	dyn.SSH.Policy.Env = []string{"LANG"}
	if staticChanged(base(), dyn) {
		t.Error("peers and the ssh policy are dynamic, but a change was called static")
	}
	st := base()
	st.SSH.Shell = "/bin/bash"
	if !staticChanged(base(), st) {
		t.Error("[ssh] shell is static, but its change was not noticed")
	}
	st = base()
	st.SFTP.MaxHandles = 3
	if !staticChanged(base(), st) {
		t.Error("[sftp] is static, but its change was not noticed")
	}
}

// TestReloadClassification walks every key of every section: changing one
// must be called static unless the table lists it (or a table above it) as
// hot-reloaded. A new key is static until both its tag and this table say
// otherwise.
func TestReloadClassification(t *testing.T) {
	dynamic := map[string]bool{
		"peers": true, "tokens": true,
		"ssh.policy": true, "dns.zones": true,
		"git.default": true, "git.repos": true,
		"fs.public": true,
	}
	seen := map[string]bool{}
	var walk func(path []int, prefix string, typ reflect.Type)
	walk = func(path []int, prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			sf := typ.Field(i)
			if !sf.IsExported() {
				continue
			}
			idx := append(slices.Clone(path), i)
			name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
			key := prefix
			if !sf.Anonymous {
				key = strings.TrimPrefix(prefix+"."+name, ".")
			}
			if sf.Type.Kind() == reflect.Struct && hasExportedFields(sf.Type) {
				if dynamic[key] {
					seen[key] = true
				}
				walk(idx, key, sf.Type)
				continue
			}
			want := false
			for k := range dynamic {
				if key == k || strings.HasPrefix(key, k+".") {
					want, seen[k] = true, true
				}
			}
			next := &Config{}
			if !setNonZero(next, idx) {
				t.Fatalf("%s: cannot make a non-zero %s", key, sf.Type)
			}
			if got := !staticChanged(&Config{}, next); got != want {
				t.Errorf("%s: hot-reloaded %v, want %v", key, got, want)
			}
		}
	}
	walk(nil, "", reflect.TypeFor[Config]())
	for k := range dynamic {
		if !seen[k] {
			t.Errorf("the table lists %s, which is no key", k)
		}
	}
}

func hasExportedFields(t reflect.Type) bool {
	for i := range t.NumField() {
		if t.Field(i).IsExported() {
			return true
		}
	}
	return false
}

// setNonZero sets the field of f at index path to a non-zero value.
func setNonZero(f *Config, path []int) bool {
	v := reflect.ValueOf(f).Elem().FieldByIndex(path)
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		m.SetMapIndex(reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem())
		v.Set(m)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	default:
		return false
	}
	return true
}

func TestFSSection(t *testing.T) {
	var f Config
	if err := config.Decode("x.toml", []byte("[fs]\nstore_dir = \"rel\"\n"), &f); err == nil || !strings.Contains(err.Error(), "fs.store_dir") {
		t.Errorf("relative store_dir: %v", err)
	}
	if err := config.Decode("x.toml", []byte("[fs]\nstore_dir = \"/srv/fs\"\npublic = true\n"), &f); err != nil || f.FS.Dir("/data") != "/srv/fs" {
		t.Errorf("store_dir: %v, dir %q", err, f.FS.Dir("/data"))
	}
	if d := (&fsConfig{}).Dir("/data"); d != "/data/fs" {
		t.Errorf("default store dir %q", d)
	}
	base := &Config{}
	if staticChanged(base, &Config{FS: fsConfig{Public: true}}) {
		t.Error("fs.public needs a restart")
	}
	if !staticChanged(base, &Config{FS: fsConfig{NoSync: true}}) {
		t.Error("fs.no_sync applied without a restart")
	}
}
