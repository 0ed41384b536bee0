package dns

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// kdig runs kdig with args and returns its output.
func kdig(t *testing.T, args ...string) string {
	t.Helper()
	bin := coretest.RequireTool(t, "kdig")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"+timeout=5", "+retry=0"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kdig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kdigCase is one query and what kdig's output must contain.
type kdigCase struct {
	args []string
	want []string
}

var kdigCases = []kdigCase{
	{[]string{"www.example.org", "A"}, []string{"status: NOERROR", "Flags: qr aa", "www.example.org.", "192.0.2.1"}},
	{[]string{"www.example.org", "AAAA"}, []string{"status: NOERROR", "2001:db8::1"}},
	{[]string{"www.example.org", "TXT"}, []string{"status: NOERROR", `"hello world"`}},
	{[]string{"svc.example.org", "SVCB"}, []string{"status: NOERROR", `alpn=doq,dot`, "port=853"}},
	{[]string{"nope.example.org", "A"}, []string{"status: NXDOMAIN", "AUTHORITY SECTION", "SOA"}},
	{[]string{"www.example.org", "MX"}, []string{"status: NOERROR", "ANSWER: 0", "AUTHORITY SECTION", "SOA"}},
}

func runKdigCases(t *testing.T, transport []string, server string, port string) {
	t.Helper()
	for _, tc := range kdigCases {
		args := append(append([]string{"@" + server, "-p", port}, transport...), tc.args...)
		out := kdig(t, args...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("kdig %s: output lacks %q:\n%s", strings.Join(args, " "), w, out)
			}
		}
	}
}

func TestKdigDoQ(t *testing.T) {
	coretest.RequireTool(t, "kdig")
	n := startNode(t, testServer(t, nil))
	host, port := splitHostPort(t, n.HostPort)
	runKdigCases(t, []string{"+quic"}, host, port)
}

func TestKdigDoT(t *testing.T) {
	coretest.RequireTool(t, "kdig")
	n := startNode(t, testServer(t, nil))
	host, port := splitHostPort(t, n.HostPort)
	runKdigCases(t, []string{"+tls"}, host, port)
}

func TestKdigClassic(t *testing.T) {
	coretest.RequireTool(t, "kdig")
	s := testServer(t, nil)
	cl := startClassic(t, s)
	host, port := splitHostPort(t, cl.Addr().String())
	runKdigCases(t, []string{"+notcp"}, host, port)
	runKdigCases(t, []string{"+tcp"}, host, port)
	out := kdig(t, "@"+host, "-p", port, "+notcp", "+ignore", "big.example.org", "TXT")
	if !strings.Contains(out, "Flags: qr aa tc") {
		t.Errorf("large UDP answer not truncated:\n%s", out)
	}
}

func TestKdigDoH(t *testing.T) {
	coretest.RequireTool(t, "kdig")
	s := testServer(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/dns-query", s.DoHHandler())
	hs := httptest.NewUnstartedServer(mux)
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(hs.Close)
	host, port := splitHostPort(t, strings.TrimPrefix(hs.URL, "https://"))
	runKdigCases(t, []string{"+https"}, host, port)
	runKdigCases(t, []string{"+https-get"}, host, port)
}

func splitHostPort(t *testing.T, hp string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(hp, ':')
	return hp[:i], hp[i+1:]
}

// TestKdigDoTOffersALPN shows kdig +tls offers ALPN dot: it is answered by
// a node that routes no ALPN-less clients. (TestKdigDoT's node also routes
// clients offering no ALPN; TestDoTPipelined covers that case.)
func TestKdigDoTOffersALPN(t *testing.T) {
	coretest.RequireTool(t, "kdig")
	n := coretest.Start(t, core.Config{}, testServer(t, nil))
	host, port := splitHostPort(t, n.HostPort)
	out := kdig(t, "@"+host, "-p", port, "+tls", "www.example.org", "A")
	if !strings.Contains(out, "192.0.2.1") {
		t.Errorf("no answer:\n%s", out)
	}
}

// TestKdigSignedRecord publishes a node's self-description through the
// relay and reads it back with kdig over DoQ.
func TestKdigSignedRecord(t *testing.T) {
	coretest.RequireTool(t, "kdig")
	e := newRelayEnv(t, nil)
	p, err := SignSelf(fixedKey, selfInfo(), fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.put(t, p.Key().String(), p.RelayPayload()); r.StatusCode != http.StatusNoContent {
		t.Fatalf("PUT: %d", r.StatusCode)
	}
	n := startNode(t, e.s)
	host, port := splitHostPort(t, n.HostPort)
	out := kdig(t, "@"+host, "-p", port, "+quic", "_alknet."+p.Key().String()+".alk.test", "SVCB")
	for _, w := range []string{"status: NOERROR", "Flags: qr aa", "120", `alpn=alknet/call,doq`, "port=4433", "ipv4hint=192.0.2.10"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
