package node

import (
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/core"
)

// Config is the whole alknet.toml: core's sections at the top level, then
// one section per service. Each service's section type lives beside its
// service (ssh.go, sftp.go, …); docs/config.md describes them all. A
// section declares which of its settings a reload applies by tagging their
// fields reload:"dynamic" (a sub-table's fields may be tagged too); every
// other setting needs a restart. TestReloadClassification lists every key.
type Config struct {
	config.Core
	// SSH is the [ssh] section. Static; [ssh.policy] is dynamic.
	SSH sshConfig `toml:"ssh"`
	// SFTP is the [sftp] section. Static.
	SFTP sftpConfig `toml:"sftp"`
	// DNS is the [dns] section. Static; [[dns.zones]] is dynamic.
	DNS dnsConfig `toml:"dns"`
	// Git is the [git] section. Static; [git.default] and [git.repos] are
	// dynamic.
	Git gitConfig `toml:"git"`
	// Msg is the [msg] section. Static.
	Msg msgConfig `toml:"msg"`
	// HTTP is the [http] section. Static.
	HTTP httpConfig `toml:"http"`
	// FS is the [fs] section. Static; fs.public is dynamic.
	FS fsConfig `toml:"fs"`
	// Relay is the [relay] section. Static.
	Relay relayConfig `toml:"relay"`
	// Client is the [client] section, read by client commands only.
	// Dynamic: the node does not use it, so a change needs no restart.
	Client clientConfig `toml:"client" reload:"dynamic"`
}

// Validate checks core's sections and every service's, reporting every
// problem at once.
func (f *Config) Validate() error {
	return errors.Join(f.Core.Validate(), CheckServices(f.Services.Disable), f.SSH.validate(), f.SFTP.validate(), f.DNS.validate(), f.Git.validate(), f.Msg.validate(), f.HTTP.validate(), f.FS.validate(), f.Relay.validate(), f.Client.validate())
}

// LoadConfig reads the config file at start; a missing file means the
// embedded defaults (an empty config).
func LoadConfig(path string) (*Config, error) {
	var f Config
	err := config.Load(path, &f)
	if errors.Is(err, os.ErrNotExist) {
		return &f, nil
	}
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// reloadConfig reads the config file for a reload. A missing file is an
// error: the running config stays, rather than the defaults revoking
// every peer and token.
func reloadConfig(path string) (*Config, error) {
	var f Config
	if err := config.Load(path, &f); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is gone; keeping the running config: %w", path, err)
		}
		return nil, err
	}
	return &f, nil
}

// staticChanged reports whether a reload changed settings that only a
// restart applies: every field not tagged reload:"dynamic".
func staticChanged(old, next *Config) bool {
	return !reflect.DeepEqual(static(old), static(next))
}

// static returns a copy of f without its hot-reloaded settings.
func static(f *Config) Config {
	s := *f
	zeroDynamic(reflect.ValueOf(&s).Elem())
	return s
}

// zeroDynamic zeroes the fields of the struct v tagged reload:"dynamic",
// descending into struct fields (sections and their sub-tables). It only
// replaces fields of v, never what v's maps or slices share with others.
func zeroDynamic(v reflect.Value) {
	for i := range v.NumField() {
		f, sf := v.Field(i), v.Type().Field(i)
		switch {
		case !sf.IsExported():
		case sf.Tag.Get("reload") == "dynamic":
			f.SetZero()
		case f.Kind() == reflect.Struct:
			zeroDynamic(f)
		}
	}
}

// clientConfig is the [client] section: settings of the client commands
// (alknet perf, pipe, fs --node, forward, ...), not of the node.
type clientConfig struct {
	// Network is the transport of client commands: "quic", "tcp", or ""
	// (auto): QUIC first, with TCP+TLS started beside it after 1 s (the
	// first handshake to complete wins), except for nodes where QUIC did
	// not connect within that second (TCP+TLS first for 5 minutes) or a
	// QUIC connection was found bound by random loss (quic-go's NewReno;
	// TCP+TLS first for 30 minutes); the choice is remembered in
	// <data-dir>/paths (docs/protocols/core.md, "Transport choice"). The
	// --network flag and ALKNET_NETWORK override it. Default "".
	Network string `toml:"network"`
	// Via is the head ([NODEID@]HOST:PORT) through which client commands
	// reach nodes (docs/protocols/relay.md): for a node behind NAT that
	// joined that head. Over QUIC the head first tries to punch a direct
	// path through the NATs; where it cannot, the connection is relayed.
	// The --via flag and ALKNET_VIA override it. Default "" (dial nodes
	// directly).
	Via string `toml:"via"`
	// RelayOnly keeps connections through a head relayed: no punched
	// direct path. The --relay-only flag turns it on too. Default false.
	RelayOnly bool `toml:"relay_only"`
}

func (c *clientConfig) validate() error {
	switch core.Network(c.Network) {
	case core.NetworkAuto, core.NetworkQUIC, core.NetworkTCP:
		return nil
	}
	return fmt.Errorf("client.network %q: want quic, tcp or empty", c.Network)
}
