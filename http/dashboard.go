package http

import (
	"bytes"
	"cmp"
	_ "embed"
	"html/template"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alkdev/alknet/call"
)

// The dashboard is one server-rendered page: no script, styles inline.
//
//go:embed dashboard.tmpl
var dashboardSource string

var dashboardPage = template.Must(template.New("dashboard").Parse(dashboardSource))

// dashboardCSP allows the page nothing but its own inline style.
const dashboardCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// routeDashboard serves the dashboard at GET / when the config turns it
// on: to the admin scope and, with TrustLoopback, to clients on loopback.
func (s *Server) routeDashboard() {
	if s.cfg.Dashboard {
		s.mux.Handle("GET /{$}", s.admin(http.HandlerFunc(s.serveDashboard), AdminScope))
	}
}

// NodeStatus is what a node reports to the dashboard beyond this server
// (see [Config.Status]).
type NodeStatus struct {
	// Conns are the live connections per ALPN, over every service.
	Conns map[string]int
	// Rejects are the node's recent auth rejects, newest first, of every
	// service (this server's included: the dashboard lists its own, with
	// the request, instead); RejectsTotal counts every one since the start.
	Rejects      []NodeReject
	RejectsTotal uint64
	// Reload is the last config reload; nil if none since the start.
	Reload *NodeReload
}

// NodeReject is one refused credential: never the credential itself.
type NodeReject struct {
	At       time.Time
	ALPN     string
	RemoteIP string
}

// NodeReload is a config reload and its result (Error empty: applied).
type NodeReload struct {
	At      time.Time
	Trigger string
	Error   string
}

// dashboard is what the page shows.
type dashboard struct {
	NodeID       string
	Now          string
	Viewer       string
	ALPNs        []alpnRow
	Head         bool // the node has a peer set
	Peers        []call.PeerOps
	Ops          []opRow
	Rejects      []authReject
	RejectsTotal uint64
	MaxRejects   int
	Live         bool       // ALPNs counts live connections of every service
	Reload       *reloadRow // nil: no reload since the start, or not known
	ReloadKnown  bool       // the node reports its reloads
}

// reloadRow is the last config reload as the page shows it.
type reloadRow struct {
	Time    string // UTC
	Trigger string
	Error   string
}

// alpnRow is one served protocol; Counted is false for the ALPNs of other
// services, whose connections this server does not see.
type alpnRow struct {
	ALPN    string
	Counted bool
	Conns   uint64
}

// opRow is one local operation and its calls over every front door.
type opRow struct {
	Name   string
	Type   call.OpType
	Calls  uint64
	Errors uint64
	Mean   string
}

// serveDashboard renders the page.
func (s *Server) serveDashboard(w http.ResponseWriter, r *http.Request) {
	series := s.metrics.read()
	d := dashboard{
		NodeID:       s.cfg.NodeID,
		Now:          time.Now().UTC().Format(time.DateTime),
		Viewer:       "loopback, without a token",
		Head:         s.cfg.Peers != nil,
		Rejects:      s.rejects.recent(),
		RejectsTotal: uint64(series[seriesKey{"alknet_http_auth_rejects_total", ""}].count),
		MaxRejects:   maxRejects,
	}
	if id := Caller(r.Context()); id != nil {
		d.Viewer = id.ID
	}
	alpns := s.cfg.ALPNs
	if alpns == nil {
		alpns = s.ALPNs()
	}
	for _, a := range alpns {
		d.ALPNs = append(d.ALPNs, alpnRow{ALPN: a, Counted: slices.Contains(s.ALPNs(), a),
			Conns: uint64(series[seriesKey{"alknet_http_connections_total", a}].count)})
	}
	if s.cfg.Status != nil {
		s.addNodeStatus(&d, s.cfg.Status())
	}
	if d.Head {
		d.Peers = s.cfg.Peers.List()
		slices.SortFunc(d.Peers, func(a, b call.PeerOps) int { return cmp.Compare(a.Peer, b.Peer) })
	}
	for _, spec := range s.cfg.Registry.Specs() {
		if spec.Visibility != call.External {
			continue
		}
		lat := series[seriesKey{"alknet_call_duration_seconds", spec.Name}]
		row := opRow{Name: spec.Name, Type: spec.Type, Mean: "-",
			Calls:  uint64(series[seriesKey{"alknet_call_calls_total", spec.Name}].count),
			Errors: uint64(series[seriesKey{"alknet_call_errors_total", spec.Name}].count)}
		if lat.count > 0 {
			row.Mean = time.Duration(lat.sum / lat.count * float64(time.Second)).Round(time.Microsecond).String()
		}
		d.Ops = append(d.Ops, row)
	}
	var b bytes.Buffer
	if err := dashboardPage.Execute(&b, d); err != nil {
		s.logger.Error("dashboard: rendering failed", "err", err)
		http.Error(w, "rendering failed", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = b.WriteTo(w)
}

// addNodeStatus shows what the node reports: live connections of every
// ALPN, the other services' rejects beside this server's own, the reload.
func (s *Server) addNodeStatus(d *dashboard, st NodeStatus) {
	d.Live = true
	for i := range d.ALPNs {
		d.ALPNs[i].Counted = true
		d.ALPNs[i].Conns = uint64(st.Conns[d.ALPNs[i].ALPN])
	}
	d.RejectsTotal = max(d.RejectsTotal, st.RejectsTotal)
	for _, r := range st.Rejects {
		if slices.Contains(s.ALPNs(), r.ALPN) {
			continue // listed by this server, with its request
		}
		d.Rejects = append(d.Rejects, authReject{Time: r.At.UTC().Format(time.DateTime), RemoteIP: r.RemoteIP,
			ALPN: r.ALPN, Request: "-", Reason: "key or credential refused"})
	}
	slices.SortStableFunc(d.Rejects, func(a, b authReject) int { return cmp.Compare(b.Time, a.Time) })
	if len(d.Rejects) > maxRejects {
		d.Rejects = d.Rejects[:maxRejects]
	}
	d.ReloadKnown = true
	if r := st.Reload; r != nil {
		d.Reload = &reloadRow{Time: r.At.UTC().Format(time.DateTime), Trigger: r.Trigger, Error: r.Error}
	}
}

// seriesKey names one series of the server's metrics: its family and its
// one label's value (empty for an unlabelled metric).
type seriesKey struct{ name, label string }

// sample is a counter's value (count), or a histogram's count and sum.
type sample struct{ count, sum float64 }

// read returns the server's own counters and histograms. A collector that
// fails leaves its series out: a status page shows what there is.
func (m *metrics) read() map[seriesKey]sample {
	fams, _ := m.reg.Gather()
	out := make(map[seriesKey]sample)
	for _, f := range fams {
		if !strings.HasPrefix(f.GetName(), "alknet_") {
			continue
		}
		for _, mt := range f.GetMetric() {
			k := seriesKey{name: f.GetName()}
			if l := mt.GetLabel(); len(l) > 0 {
				k.label = l[0].GetValue()
			}
			if h := mt.GetHistogram(); h != nil {
				out[k] = sample{count: float64(h.GetSampleCount()), sum: h.GetSampleSum()}
			} else {
				out[k] = sample{count: mt.GetCounter().GetValue()}
			}
		}
	}
	return out
}

// maxRejects is how many auth rejects the dashboard remembers.
const maxRejects = 20

// authReject is one refused credential as the dashboard lists it: never
// the credential itself.
type authReject struct {
	Time     string // UTC
	RemoteIP string
	ALPN     string
	Request  string // method and path, clipped
	Reason   string
}

// rejectLog keeps the most recent auth rejects. The zero value is empty
// and ready; it is safe for concurrent use.
type rejectLog struct {
	mu   sync.Mutex
	last []authReject // oldest first, at most maxRejects
}

// add keeps e, forgetting the oldest reject when full.
func (l *rejectLog) add(e authReject) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.last) == maxRejects {
		l.last = slices.Delete(l.last, 0, 1)
	}
	l.last = append(l.last, e)
}

// recent returns the rejects kept, newest first.
func (l *rejectLog) recent() []authReject {
	l.mu.Lock()
	out := slices.Clone(l.last)
	l.mu.Unlock()
	slices.Reverse(out)
	return out
}

// maxRejectPath clips the path a reject lists (it is the client's text).
const maxRejectPath = 80

// noteReject keeps a request refused for its credential, when the
// dashboard is on: when, from where, on what and why. malformed tells a
// broken Authorization header from a token that does not resolve.
func (s *Server) noteReject(r *http.Request, ci connInfo, malformed bool) {
	if !s.cfg.Dashboard {
		return
	}
	reason := "token not accepted (unknown or expired)"
	if malformed {
		reason = "malformed Authorization header"
	}
	ip := ci.peer.RemoteIP()
	if ip == "-" {
		ip, _, _ = net.SplitHostPort(r.RemoteAddr)
	}
	path := []rune(strings.ToValidUTF8(r.URL.Path, "\uFFFD"))
	if len(path) > maxRejectPath {
		path = append(path[:maxRejectPath], '…')
	}
	s.rejects.add(authReject{
		Time:     time.Now().UTC().Format(time.DateTime),
		RemoteIP: ip,
		ALPN:     ci.alpn,
		Request:  r.Method + " " + string(path),
		Reason:   reason,
	})
}
