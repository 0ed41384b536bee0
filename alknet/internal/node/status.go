package node

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	alkhttp "github.com/alkdev/alknet/http"
)

// Status is what sys/status answers, and `alknet status` prints.
type Status struct {
	NodeID  string `json:"nodeId"`
	Version string `json:"version"`
	// Listen is the address the endpoint is bound to.
	Listen        string `json:"listen"`
	ControlSocket string `json:"controlSocket"`
	// WebPin is the pin of the web certificate (h3, h2, http/1.1, DoQ,
	// DoT) as curl's --pinnedpubkey takes it; empty with ACME.
	WebPin  string    `json:"webPin,omitempty"`
	Started time.Time `json:"started"`
	Uptime  float64   `json:"uptimeSeconds"`
	// Services are the services this build runs or has disabled.
	Services []ServiceStatus `json:"services"`
	// Connections are the live connections per ALPN (over QUIC and
	// TCP+TLS; the control socket's are not counted).
	Connections map[string]int `json:"connections"`
	// Workers are the workers attached to this node as head, by ID.
	Workers []string `json:"workers"`
	// Relay is this node's part in relaying (docs/protocols/relay.md).
	Relay RelayStatus `json:"relay"`
	// Reload is the last config reload; nil if none since the start.
	Reload *ReloadStatus `json:"reload,omitempty"`
	// AuthRejects are the most recent refused credentials, newest first;
	// AuthRejectsTotal counts them all since the start.
	AuthRejects      []AuthReject `json:"authRejects"`
	AuthRejectsTotal uint64       `json:"authRejectsTotal"`
}

// RelayStatus is a node's part in relaying: as a worker, the head it is
// registered with and the connections that came through it; as a head,
// the nodes registered with it.
type RelayStatus struct {
	// Via is the head this node is registered with now (serve --join);
	// empty when it is not.
	Via string `json:"via,omitempty"`
	// RelayedConnections counts the live connections that reached this
	// node through a head's relay; the others came to its own address.
	RelayedConnections int `json:"relayedConnections"`
	// Registered are the NodeIDs registered with this node as head.
	Registered []string `json:"registered"`
}

// ServiceStatus is one service and its ALPNs.
type ServiceStatus struct {
	Name    string   `json:"name"`
	ALPNs   []string `json:"alpns"`
	Enabled bool     `json:"enabled"`
}

// ReloadStatus is one config reload and its result.
type ReloadStatus struct {
	At      time.Time `json:"at"`
	Trigger string    `json:"trigger"` // "file or signal", or "control" (sys/reload)
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
}

// AuthReject is one refused credential, as core.LogAuth logged it: never
// the credential itself.
type AuthReject struct {
	At       time.Time `json:"at"`
	ALPN     string    `json:"alpn"`
	RemoteIP string    `json:"remoteIp"`
	// NodeID is the key presented, if any.
	NodeID string `json:"nodeId,omitempty"`
}

// maxAuthRejects is how many auth rejects a node keeps for its status.
const maxAuthRejects = 20

// status gathers a running node's status. Run makes it before the build
// (buildCall and buildHTTP take it) and sets the endpoint once it exists.
type status struct {
	id       core.NodeID
	version  string
	control  string
	webPin   string // set by Run once the web certificate is loaded
	started  time.Time
	services []ServiceStatus
	peers    *call.Peers

	ep      atomic.Pointer[core.Endpoint]
	relay   atomic.Pointer[core.RelayServer] // set by buildRelay on a head
	rejects *rejectRing

	mu     sync.Mutex
	reload *ReloadStatus
	// reloadFn reloads the config file now (sys/reload); set by Run.
	reloadFn func(ctx context.Context) error
}

func newStatus(n *node, on map[string]bool, control string, rejects *rejectRing) *status {
	s := &status{id: n.id, version: n.version, control: control, started: time.Now(), peers: n.peers, rejects: rejects}
	for _, svc := range services() {
		s.services = append(s.services, ServiceStatus{Name: svc.name, ALPNs: svc.alpns, Enabled: on[svc.name]})
	}
	return s
}

// snapshot returns the status now.
func (s *status) snapshot() Status {
	st := Status{
		NodeID:        s.id.String(),
		Version:       s.version,
		ControlSocket: s.control,
		WebPin:        s.webPin,
		Started:       s.started.UTC(),
		Uptime:        time.Since(s.started).Seconds(),
		Services:      s.services,
		Connections:   map[string]int{},
		Workers:       []string{},
		Relay:         RelayStatus{Registered: []string{}},
	}
	if ep := s.ep.Load(); ep != nil {
		st.Listen = ep.Addr().String()
		st.Connections = ep.ConnsByALPN()
		st.Relay.Via = ep.RelayHead()
		st.Relay.RelayedConnections = ep.RelayedConns()
	}
	if r := s.relay.Load(); r != nil {
		for _, id := range r.Registered() {
			st.Relay.Registered = append(st.Relay.Registered, id.String())
		}
	}
	for _, p := range s.peers.List() {
		st.Workers = append(st.Workers, p.Peer)
	}
	slices.Sort(st.Workers)
	s.mu.Lock()
	if s.reload != nil {
		r := *s.reload
		st.Reload = &r
	}
	s.mu.Unlock()
	st.AuthRejects, st.AuthRejectsTotal = s.rejects.recent()
	return st
}

// reloaded records a reload's result.
func (s *status) reloaded(trigger string, err error) {
	r := &ReloadStatus{At: time.Now().UTC(), Trigger: trigger, OK: err == nil}
	if err != nil {
		r.Error = err.Error()
	}
	s.mu.Lock()
	s.reload = r
	s.mu.Unlock()
}

// setReload sets what sys/reload runs.
func (s *status) setReload(f func(context.Context) error) {
	s.mu.Lock()
	s.reloadFn = f
	s.mu.Unlock()
}

// dashboard is the status as the HTTP server's dashboard shows it.
func (s *status) dashboard() alkhttp.NodeStatus {
	st := s.snapshot()
	d := alkhttp.NodeStatus{Conns: st.Connections, RejectsTotal: st.AuthRejectsTotal}
	for _, r := range st.AuthRejects {
		d.Rejects = append(d.Rejects, alkhttp.NodeReject{At: r.At, ALPN: r.ALPN, RemoteIP: r.RemoteIP})
	}
	if r := st.Reload; r != nil {
		d.Reload = &alkhttp.NodeReload{At: r.At, Trigger: r.Trigger, Error: r.Error}
	}
	return d
}

// reloadOut is sys/reload's answer.
type reloadOut struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// registerStatusOps adds sys/status and sys/reload, for the admin scope
// (the control socket's operator has it).
func registerStatusOps(reg *call.Registry, s *status) error {
	admin := core.AccessControl{AllScopes: []string{alkhttp.AdminScope}}
	if err := call.Register(reg, call.Spec{Name: "sys/status", Access: admin,
		Description: "the node's status: address, uptime, services, connections per ALPN, workers, last reload, auth rejects"},
		func(context.Context, *call.Request, struct{}) (Status, error) {
			return s.snapshot(), nil
		}); err != nil {
		return err
	}
	return call.Register(reg, call.Spec{Name: "sys/reload", Type: call.Mutation, Access: admin,
		Description: "re-read the config file now, as on SIGHUP; answers whether it applied"},
		func(ctx context.Context, _ *call.Request, _ struct{}) (reloadOut, error) {
			s.mu.Lock()
			f := s.reloadFn
			s.mu.Unlock()
			if f == nil {
				return reloadOut{Error: "the node is not serving yet"}, nil
			}
			if err := f(ctx); err != nil {
				return reloadOut{Error: err.Error()}, nil
			}
			return reloadOut{OK: true}, nil
		})
}

// rejectRing keeps the most recent auth rejects.
type rejectRing struct {
	mu    sync.Mutex
	last  []AuthReject // oldest first
	total uint64
}

func (r *rejectRing) add(a AuthReject) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if len(r.last) == maxAuthRejects {
		r.last = slices.Delete(r.last, 0, 1)
	}
	r.last = append(r.last, a)
}

// recent returns the rejects kept, newest first, and the total.
func (r *rejectRing) recent() ([]AuthReject, uint64) {
	r.mu.Lock()
	out := slices.Clone(r.last)
	total := r.total
	r.mu.Unlock()
	slices.Reverse(out)
	if out == nil {
		out = []AuthReject{}
	}
	return out, total
}

// rejectTap passes every record on to its handler, and keeps the auth
// rejects (core.LogAuth's "auth" records with result=reject, whose shape
// docs/fail2ban relies on too) in a ring, whatever the log level.
type rejectTap struct {
	slog.Handler
	ring *rejectRing
}

func (t *rejectTap) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || t.Handler.Enabled(ctx, l)
}

func (t *rejectTap) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "auth" && r.Level == slog.LevelWarn {
		a := AuthReject{At: r.Time.UTC()}
		reject := false
		r.Attrs(func(at slog.Attr) bool {
			switch at.Key {
			case "result":
				reject = at.Value.String() == string(core.AuthReject)
			case "alpn":
				a.ALPN = at.Value.String()
			case "remote_ip":
				a.RemoteIP = at.Value.String()
			case "node":
				if v := at.Value.String(); v != "-" {
					a.NodeID = v
				}
			}
			return true
		})
		if reject {
			t.ring.add(a)
		}
	}
	if !t.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return t.Handler.Handle(ctx, r)
}

func (t *rejectTap) WithAttrs(as []slog.Attr) slog.Handler {
	return &rejectTap{Handler: t.Handler.WithAttrs(as), ring: t.ring}
}

func (t *rejectTap) WithGroup(name string) slog.Handler {
	return &rejectTap{Handler: t.Handler.WithGroup(name), ring: t.ring}
}
