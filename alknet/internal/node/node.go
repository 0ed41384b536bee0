// Package node assembles and runs an alknet node: the config file's types
// (alknet.toml), one builder per service, and [Run], which builds the
// services, listens, serves, reloads the config and stops in order.
//
// The assembly, from `alknet serve` to a handler's Serve:
//
//	serve.go (package main)   flags, vault keys, signals → node.Run
//	run.go                    Run: build, core.New, Listen, tasks, Serve, ordered stop
//	node.go                   build: each enabled service's builder, in dependency order
//	<service>.go              buildSSH, buildDNS, …: config section → handler in a part
//	core.Endpoint.Serve       routes each connection by ALPN to handler.Serve
package node

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/perf"
	"github.com/alkdev/alknet/dns"
	"github.com/alkdev/alknet/fs"
	"github.com/alkdev/alknet/git"
	alkhttp "github.com/alkdev/alknet/http"
	"github.com/alkdev/alknet/msg"
	"github.com/alkdev/alknet/sftp"
	"github.com/alkdev/alknet/ssh"
)

// Keys are the keys a node takes from its vault.
type Keys struct {
	Node    ed25519.PrivateKey // the node key
	Msg     *ecdh.PrivateKey   // the X25519 messaging key (msg.KeyPath)
	MixSeed []byte             // the mix key seed (msg.MixKeyPath)
}

// ID returns the NodeID of a node key.
func ID(key ed25519.PrivateKey) core.NodeID {
	id, _ := core.NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	return id
}

// node is what every builder reads. Builders do not write to it: what one
// service makes for another is a builder's result, handed on by build.
type node struct {
	logger     *slog.Logger
	key        ed25519.PrivateKey
	id         core.NodeID
	dataDir    string
	cfg        *Config // as loaded at start; a part's reload sees changes
	identities *core.LiveDirectory
	calls      *call.Registry // operations served on alknet/call
	peers      *call.Peers    // workers attached to this node as head
	version    string         // this build's version, as published

	msgKey  *ecdh.PrivateKey // the X25519 messaging key (vault m/74'/3'/0')
	mixSeed []byte           // the mix key seed (vault m/74'/3'/1')

	bound atomic.Value // the address the endpoint listens on, once it does (string)

	// via is the head this node is reachable through by relay
	// ("<nodeid>@host:port"), published in its self-description; set by
	// Run before it builds anything.
	via []string

	status *status // what sys/status and the dashboard show; Run fills in the endpoint
}

// listenAddr is the address the endpoint listens on, which tasks see (they
// start after the endpoint listens), or the configured one before that.
func (n *node) listenAddr() string {
	if a, ok := n.bound.Load().(string); ok {
		return a
	}
	return n.cfg.Node.ListenAddr()
}

// service names a protocol a node can run, for [services] disable, and the
// ALPNs it serves.
type service struct {
	name  string
	alpns []string
}

// services lists every service this build of alknet runs, in the order of
// the ALPNs the node publishes.
func services() []service {
	return []service{
		{"call", []string{call.ALPN}},
		{"sftp", []string{sftp.ALPN}},
		{"ssh", []string{ssh.ALPN, ssh.FwdALPN}},
		{"dns", []string{dns.ALPN, dns.ALPNDoQ, dns.ALPNDoT}},
		{"git", []string{git.ALPN}},
		{"msg", []string{msg.ALPN}},
		{"fs", []string{fs.ALPN}},
		{"http", []string{alkhttp.ALPNH3, alkhttp.ALPNH2, alkhttp.ALPNHTTP1, alkhttp.ALPN}},
		{"perf", []string{perf.ALPN}},
		{"relay", []string{core.RelayALPN}},
	}
}

// CheckServices reports an error naming any unknown service in disable.
func CheckServices(disable []string) error {
	_, err := enabled(disable)
	return err
}

// enabled returns whether each known service runs, and an error naming
// any unknown service in disable.
func enabled(disable []string) (map[string]bool, error) {
	all := services()
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.name
	}
	for _, d := range disable {
		if !slices.Contains(names, d) {
			return nil, fmt.Errorf("services.disable: unknown service %q (known: %v)", d, names)
		}
	}
	on := make(map[string]bool, len(all))
	for _, name := range names {
		on[name] = !slices.Contains(disable, name)
	}
	return on, nil
}

// build builds the services on says run, each by its own builder with what
// it needs from the others as arguments (nil for a disabled one), handing
// what they must run and close to l. If one fails, everything built so far
// is closed.
func build(n *node, on map[string]bool, l *lifecycle) (hs []core.Handler, err error) {
	var alpns []string
	for _, s := range services() {
		if on[s.name] {
			alpns = append(alpns, s.alpns...)
		}
	}
	defer func() {
		if err != nil {
			hs, err = nil, errors.Join(err, l.close())
		}
	}()
	// add takes over a built part; it returns err, named by the service.
	add := func(name string, p part, err error) error {
		if err != nil {
			return fmt.Errorf("service %s: %w", name, err)
		}
		l.add(p)
		hs = append(hs, p.handler)
		return nil
	}

	var callH core.Handler // the alknet/call handler, which ssh's alknet-call target serves
	if on["call"] {
		p, err := buildCall(n, alpns)
		if err := add("call", p, err); err != nil {
			return nil, err
		}
		callH = p.handler
	}
	var sftpSrv *sftp.Server // the ssh service's sftp subsystem
	if on["sftp"] {
		var err error
		sftpSrv, err = buildSFTP(n)
		if err := add("sftp", part{handler: sftpSrv}, err); err != nil {
			return nil, err
		}
	}
	var sshSrv *ssh.Server // whose forwarded connections http tells apart
	if on["ssh"] {
		var p part
		var err error
		sshSrv, p, err = buildSSH(n, sftpSrv, callH)
		if err := add("ssh", p, err); err != nil {
			return nil, err
		}
	}
	var dnsSrv *dns.Server // whose DoH and relay http mounts
	if on["dns"] {
		var p part
		var err error
		dnsSrv, p, err = buildDNS(n, alpns)
		if err := add("dns", p, err); err != nil {
			return nil, err
		}
	}
	// git, msg and fs add operations to n.calls, which http serves.
	for _, s := range []struct {
		name  string
		build func(*node) (part, error)
	}{{"git", buildGit}, {"msg", buildMsg}, {"fs", buildFS}} {
		if on[s.name] {
			p, err := s.build(n)
			if err := add(s.name, p, err); err != nil {
				return nil, err
			}
		}
	}
	if on["http"] {
		p, err := buildHTTP(n, alpns, sshSrv, dnsSrv)
		if err := add("http", p, err); err != nil {
			return nil, err
		}
	}
	if on["perf"] {
		if err := add("perf", part{handler: perf.New(perf.Config{Logger: n.logger})}, nil); err != nil {
			return nil, err
		}
	}
	if on["relay"] {
		p, err := buildRelay(n)
		if err := add("relay", p, err); err != nil {
			return nil, err
		}
	}
	return hs, nil
}

// buildCall registers the built-in and demo operations and makes the
// alknet/call handler; alpns lists every ALPN the node serves, for
// call/info.
func buildCall(n *node, alpns []string) (part, error) {
	info := call.Info{NodeID: n.id.String(), Version: n.version, ALPNs: alpns}
	if n.msgKey != nil && slices.Contains(alpns, msg.ALPN) {
		rec, err := msg.SignKeyRecord(n.key, n.msgKey.PublicKey())
		if err != nil {
			return part{}, err
		}
		info.Keys = map[string]string{"msg": rec.String()}
	}
	if err := call.RegisterBuiltins(n.calls, info, n.peers); err != nil {
		return part{}, err
	}
	if err := registerSysOps(n.calls, n.id, n.version); err != nil {
		return part{}, err
	}
	if err := registerStatusOps(n.calls, n.status); err != nil {
		return part{}, err
	}
	h, err := call.New(call.Config{Registry: n.calls, Identities: n.identities, Peers: n.peers, Logger: n.logger})
	if err != nil {
		return part{}, err
	}
	return part{handler: h}, nil
}
