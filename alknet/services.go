package main

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
	"github.com/alkdev/alknet/msg"
	"github.com/alkdev/alknet/sftp"
	"github.com/alkdev/alknet/ssh"
)

// node is what the services of a running node share.
type node struct {
	logger     *slog.Logger
	key        ed25519.PrivateKey
	id         core.NodeID
	dataDir    string
	cfg        *fileConfig // as loaded at start; see onReload for changes
	identities *core.LiveDirectory
	calls      *call.Registry // operations served on alknet/call
	peers      *call.Peers    // workers attached to this node as head

	// Set by the services that provide them, for the ones built after.
	callHandler core.Handler // the alknet/call handler
	sftp        *sftp.Server // the SFTP server, for the ssh subsystem
	dns         *dns.Server  // the DNS server, whose DoH and relay http mounts
	ssh         *ssh.Server  // the SSH server, whose forwarded connections http tells apart

	msgKey  *ecdh.PrivateKey // the X25519 messaging key (vault m/74'/3'/0')
	mixSeed []byte           // the mix key seed (vault m/74'/3'/1')

	bound atomic.Value // the address the endpoint listens on, once it does (string)

	reloads []func(*fileConfig)
}

// onReload registers f to receive every new config that passed validation,
// for the settings a service applies without a restart.
func (n *node) onReload(f func(*fileConfig)) { n.reloads = append(n.reloads, f) }

// reload hands next to every onReload hook.
func (n *node) reload(next *fileConfig) {
	for _, f := range n.reloads {
		f(next)
	}
}

// listenAddr is the address the endpoint listens on, which tasks see (they
// start after the endpoint listens), or the configured one before that.
func (n *node) listenAddr() string {
	if a, ok := n.bound.Load().(string); ok {
		return a
	}
	return n.cfg.Node.ListenAddr()
}

// service is one protocol a node can run.
type service struct {
	name  string
	alpns []string
	// build makes the handler and what it needs run and closed; alpns lists
	// every ALPN the node serves. On an error it leaves nothing open.
	build func(n *node, alpns []string) (part, error)
}

// services lists, in order, every service this build of alknet runs. Each
// protocol module adds its constructor here when it lands.
func services() []service {
	return []service{
		{"call", []string{call.ALPN}, func(n *node, alpns []string) (part, error) {
			info := call.Info{NodeID: n.id.String(), Version: version(), ALPNs: alpns}
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
			if err := registerSysOps(n.calls, n.id); err != nil {
				return part{}, err
			}
			h, err := call.New(call.Config{Registry: n.calls, Identities: n.identities, Peers: n.peers, Logger: n.logger})
			if err != nil {
				return part{}, err
			}
			n.callHandler = h
			return part{handler: h}, nil
		}},
		{"sftp", []string{sftp.ALPN}, buildSFTP},
		{"ssh", []string{ssh.ALPN, ssh.FwdALPN}, buildSSH}, // after call and sftp, which it reaches
		{"dns", []string{dns.ALPN, dns.ALPNDoQ, dns.ALPNDoT}, buildDNS},
		{"git", []string{git.ALPN}, buildGit},
		{"msg", []string{msg.ALPN}, buildMsg}, // after call, whose registry it adds to
		{"fs", []string{fs.ALPN}, buildFS},
		{"http", httpALPNs, buildHTTP}, // after every service that registers operations
		{"perf", []string{perf.ALPN}, func(n *node, _ []string) (part, error) {
			return part{handler: perf.New(perf.Config{Logger: n.logger})}, nil
		}},
	}
}

// enabled returns the services not disabled, and an error naming any
// unknown service in disable.
func enabled(all []service, disable []string) ([]service, error) {
	names := make([]string, len(all))
	for i, s := range all {
		names[i] = s.name
	}
	for _, d := range disable {
		if !slices.Contains(names, d) {
			return nil, fmt.Errorf("services.disable: unknown service %q (known: %v)", d, names)
		}
	}
	return slices.DeleteFunc(slices.Clone(all), func(s service) bool { return slices.Contains(disable, s.name) }), nil
}

// build builds the services svcs, handing what they need run and closed to
// l. If one fails, everything built so far is closed.
func build(n *node, svcs []service, l *lifecycle) ([]core.Handler, error) {
	var alpns []string
	for _, s := range svcs {
		alpns = append(alpns, s.alpns...)
	}
	hs := make([]core.Handler, 0, len(svcs))
	for _, s := range svcs {
		p, err := s.build(n, alpns)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("service %s: %w", s.name, err), l.close())
		}
		l.add(p)
		hs = append(hs, p.handler)
	}
	return hs, nil
}
