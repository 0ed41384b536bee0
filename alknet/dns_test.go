package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core/coretest"
)

// dnsNodeConfig serves one zone, signed records under it, and lets the
// client publish.
func dnsNodeConfig(clientID string) string {
	return fmt.Sprintf(`[[peers]]
id = "client"
keys = [%q]
scopes = ["dns:publish"]

[node]
no_alpn = "dot"

[dns]
signed_origins = ["alk.test."]

[[dns.zones]]
origin = "alk.test."
records = [
  "@ SOA ns1 hostmaster 1 7200 3600 1209600 60",
  "@ NS ns1",
  "ns1 A 127.0.0.1",
  "www A 192.0.2.1",
]
`, clientID)
}

func TestDNSServiceResolveAndPublish(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, dnsNodeConfig(cid))
	n.waitLog(t, "dns")

	// The node's own self-description resolves and lists exactly its ALPNs.
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, e, err := runErr(t, "", "resolve", "--data-dir", cdir, "--resolver", n.addr, n.id)
		if err == nil {
			out = o
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resolve: %v\n%s", err, e)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range []string{"node     " + n.id, "alknet/dns doq dot", "alknet/call"} {
		if !strings.Contains(out, w) {
			t.Errorf("resolve output lacks %q:\n%s", w, out)
		}
	}

	// Dialling by NodeID alone: the resolver's record gives the address.
	out = run(t, "", "call", n.id, "services/ping", "--data-dir", cdir, "--resolver", n.addr)
	if !strings.Contains(out, `"pong":true`) {
		t.Errorf("call by NodeID: %s", out)
	}
	if _, stderr, err := runErr(t, "", "call", n.id, "services/ping", "--data-dir", cdir); err == nil || !strings.Contains(stderr, "no resolver is configured") {
		t.Errorf("a bare NodeID with no resolver: %v %s", err, stderr)
	}

	// The client signs a zone with its key and publishes it to the node.
	zone := filepath.Join(cdir, "me.zone")
	writeFile(t, zone, "_alknet 300 IN SVCB 1 . alpn=h2 port=8443\n_alknet 300 IN TXT \"v=client\"\n")
	out = run(t, "", "dns", "publish", "--data-dir", cdir, "--zone", zone, "--to", n.addr)
	if !strings.Contains(out, "published 2 records for "+cid) {
		t.Errorf("publish output: %s", out)
	}
	out = run(t, "", "resolve", "--data-dir", cdir, "--resolver", n.addr, cid)
	if !strings.Contains(out, "alpns    h2") || !strings.Contains(out, "port     8443") {
		t.Errorf("resolve of the published record:\n%s", out)
	}

	// Stock kdig reads both the zone and the signed record over DoQ.
	kdig := coretest.RequireTool(t, "kdig")
	host, port, _ := strings.Cut(strings.SplitN(n.addr, "@", 2)[1], ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, q := range [][3]string{{"www.alk.test", "A", "192.0.2.1"}, {"_alknet." + cid + ".alk.test", "SVCB", "alpn=h2"}} {
		b, err := exec.CommandContext(ctx, kdig, "@"+host, "-p", port, "+quic", "+timeout=5", q[0], q[1]).CombinedOutput()
		if err != nil || !strings.Contains(string(b), q[2]) {
			t.Errorf("kdig %s: %v\n%s", q, err, b)
		}
	}

	// DoH and the pkarr relay are mounted on the http service.
	b, err := exec.CommandContext(ctx, kdig, "@"+host, "-p", port, "+https", "+timeout=5", "www.alk.test", "A").CombinedOutput()
	if err != nil || !strings.Contains(string(b), "192.0.2.1") {
		t.Errorf("kdig +https: %v\n%s", err, b)
	}
	curl := coretest.RequireTool(t, "curl")
	b, err = exec.CommandContext(ctx, curl, "-sS", "-k", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "https://"+net.JoinHostPort(host, port)+"/pkarr/"+cid).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(b), "200 ") {
		t.Errorf("GET /pkarr/<client>: %v %s", err, b)
	}

	// [node] no_alpn = "dot": a TLS client offering no ALPN gets DoT.
	conn, err := tls.Dial("tcp", net.JoinHostPort(host, port), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS without ALPN: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	query := []byte{0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w', 3, 'a', 'l', 'k', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1}
	if _, err := conn.Write(append([]byte{0, byte(len(query))}, query...)); err != nil {
		t.Fatal(err)
	}
	var size [2]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		t.Fatalf("no DoT answer without ALPN: %v", err)
	}
	answer := make([]byte, int(size[0])<<8|int(size[1]))
	if _, err := io.ReadFull(conn, answer); err != nil {
		t.Fatal(err)
	}
	if len(answer) < 12 || answer[0] != 0x12 || answer[1] != 0x34 || !bytes.Contains(answer, []byte{192, 0, 2, 1}) {
		t.Errorf("DoT answer without ALPN: % x", answer)
	}
}
