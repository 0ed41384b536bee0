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
		{"[dns]\ndht_listen = \"nope\"\n", `dns.dht_listen`},
		{"[dns]\ndht_bootstrap = [\"router.example\"]\n", `dns.dht_bootstrap[0]`},
		{"[dns]\ndht = true\nrepublish = \"3h\"\n", `dns.republish: over 1h30m0s with dns.dht on`},
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

// TestReloadClassification walks every key of every section, down to the
// leaves, and checks each against this table: a reload applies the
// dynamic ones and asks for a restart for the static ones. A key added to
// a section without an entry here fails the test.
func TestReloadClassification(t *testing.T) {
	const static, dynamic = false, true
	table := map[string]bool{
		"node.listen": static, "node.no_alpn": static,
		"limits.handshake_timeout": static, "limits.idle_timeout": static, "limits.keep_alive": static,
		"limits.app_idle_timeout": static, "limits.known_app_idle_timeout": static,
		"limits.max_conns": static, "limits.max_conns_per_ip": static,
		"limits.ipv6_prefix_len": static, "limits.max_streams_per_conn": static,
		"limits.max_inflight_bytes": static, "limits.max_conn_inflight_bytes": static, "limits.max_identity_inflight_bytes": static,
		"limits.max_anon_inflight_bytes": static, "limits.max_anon_conn_inflight_bytes": static,
		"limits.frame_grace": static, "limits.frame_min_rate": static, "limits.drain_timeout": static,
		"tls.cert_file": static, "tls.key_file": static, "tls.acme_domains": static,
		"tls.acme_email": static, "tls.acme_directory": static, "tls.names": static, "tls.early_data": static,
		"services.disable": static,
		"peers":            dynamic,
		"tokens":           dynamic,
		"ssh.exec":         static, "ssh.shell": static, "ssh.tcp_listen": static,
		"ssh.max_auth_tries": static, "ssh.handshake_timeout": static, "ssh.dial_timeout": static,
		"ssh.max_channels": static, "ssh.max_remote_forwards": static, "ssh.policy.forward": dynamic,
		"ssh.policy.remote_forward": dynamic, "ssh.policy.streamlocal_connect": dynamic,
		"ssh.policy.streamlocal_listen": dynamic, "ssh.policy.env": dynamic,
		"ssh.policy.cert_authorities": dynamic,
		"sftp.root":                   static, "sftp.roots": static, "sftp.max_handles": static,
		"sftp.max_handles_per_identity": static, "sftp.max_handles_per_node": static,
		"sftp.max_sessions_per_conn": static, "sftp.max_sessions_per_identity": static,
		"sftp.all_scopes": static, "sftp.any_scopes": static,
		"dns.listen": static, "dns.zones": dynamic, "dns.signed_origins": static,
		"dns.store_dir": static, "dns.max_age": static, "dns.publish_scopes": static,
		"dns.publish_rate": static, "dns.relay_max_packets": static, "dns.require_if_match": static,
		"dns.max_udp_bytes": static, "dns.homes": static, "dns.resolvers": static,
		"dns.republish": static, "dns.dht": static, "dns.dht_bootstrap": static, "dns.dht_listen": static,
		"git.root": static, "git.allow_create": static, "git.default_branch": static,
		"git.max_pack_bytes": static, "git.pack_window": static, "git.backend": static,
		"git.git_path": static, "git.default.public": dynamic, "git.default.read_ids": dynamic,
		"git.default.read_scopes": dynamic, "git.default.write_ids": dynamic,
		"git.default.write_scopes": dynamic, "git.default.allow_force": dynamic,
		"git.default.protected": dynamic, "git.repos": dynamic,
		"msg.inbox": static, "msg.max_body_bytes": static, "msg.skew": static,
		"msg.inbox_max_count": static, "msg.inbox_max_bytes": static, "msg.inbox_ttl": static,
		"msg.deposit_scopes": static, "msg.relay_scopes": static, "msg.ops_scopes": static,
		"msg.hosted": static, "msg.homes": static, "msg.directories": static,
		"msg.epoch_length": static, "msg.epoch_grace": static, "msg.mix.enabled": static,
		"msg.mix.cover_rate": static, "msg.mix.mean_delay": static, "msg.mix.batch_interval": static,
		"msg.mix.max_queue": static, "msg.mix.routes": static, "msg.directory.publish": static,
		"msg.directory.layers": static, "msg.directory.mixes": static,
		"http.max_header_bytes": static, "http.max_body_bytes": static,
		"http.read_header_timeout": static, "http.read_timeout": static, "http.write_timeout": static,
		"http.idle_timeout": static, "http.rate": static, "http.burst": static,
		"http.max_batch": static, "http.dashboard": static, "http.trust_loopback": static,
		"fs.store_dir": static, "fs.public": dynamic, "fs.no_sync": static, "fs.max_gets": static,
		"relay.max_streams_per_worker": static, "relay.accept_timeout": static, "relay.no_listen": static,
		"client.network": dynamic, "client.via": dynamic, "client.relay_only": dynamic, // read by client commands, not the node
	}
	seen := map[string]bool{}
	for _, l := range configLeaves() {
		seen[l.key] = true
		want, ok := table[l.key]
		if !ok {
			t.Errorf("%s is not classified: add it to this table as static or dynamic (and tag it reload:\"dynamic\" if a reload applies it)", l.key)
			continue
		}
		next := &Config{}
		if !setNonZero(next, l.index) {
			t.Fatalf("%s: cannot make a non-zero %s", l.key, l.typ)
		}
		if got := !staticChanged(&Config{}, next); got != want {
			t.Errorf("%s: hot-reloaded %v, want %v", l.key, got, want)
		}
	}
	for k := range table {
		if !seen[k] {
			t.Errorf("the table lists %s, which is no key", k)
		}
	}
}

// leaf is a key of the config that holds a value (not a table of keys).
type leaf struct {
	key   string // dotted, as in alknet.toml: "ssh.policy.forward"
	index []int  // its field in Config, for reflect.Value.FieldByIndex
	typ   reflect.Type
}

// configLeaves lists every leaf key of Config, descending into sections
// and sub-tables; arrays and maps of tables are leaves.
func configLeaves() []leaf {
	var out []leaf
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
				walk(idx, key, sf.Type)
				continue
			}
			out = append(out, leaf{key, idx, sf.Type})
		}
	}
	walk(nil, "", reflect.TypeFor[Config]())
	return out
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
