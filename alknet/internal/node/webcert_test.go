package node

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/internal/config"
)

// TestSelfSignedWebCert: the certificate is kept across starts while it
// fits, made again (with the same key, so the same pin) when its names
// change or its end nears, and a damaged key file is an error that says
// what to do, never a silent new identity.
func TestSelfSignedWebCert(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"localhost", "node.example.org"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string) // after a first certificate was made
		names   []string
		now     time.Time
		made    bool
		err     string
	}{
		{name: "same names: kept", names: names, now: now.Add(24 * time.Hour), made: false},
		{name: "a name more: new", names: append(slices.Clone(names), "other.example.org"), now: now, made: true},
		{name: "nearing its end: new", names: names, now: now.Add(webCertLife - webCertRenew + time.Hour), made: true},
		{name: "expired: new", names: names, now: now.Add(2 * webCertLife), made: true},
		{name: "damaged certificate: new", names: names, now: now, made: true,
			prepare: func(t *testing.T, dir string) { writeTestFile(t, filepath.Join(dir, WebCertFile), "junk") }},
		{name: "certificate of another key: new", names: names, now: now, made: true,
			prepare: func(t *testing.T, dir string) {
				other := t.TempDir()
				if _, _, err := selfSignedWebCert(other, names, ips, now); err != nil {
					t.Fatal(err)
				}
				data, _ := os.ReadFile(filepath.Join(other, WebCertFile))
				writeTestFile(t, filepath.Join(dir, WebCertFile), string(data))
			}},
		{name: "damaged key: error", names: names, now: now, err: "remove the file",
			prepare: func(t *testing.T, dir string) { writeTestFile(t, filepath.Join(dir, WebKeyFile), "junk") }},
		{name: "key of another curve: error", names: names, now: now, err: "not an ECDSA P-256 key",
			prepare: func(t *testing.T, dir string) {
				k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
				der, _ := x509.MarshalPKCS8PrivateKey(k)
				writeTestFile(t, filepath.Join(dir, WebKeyFile), pemString("PRIVATE KEY", der))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			first, made, err := selfSignedWebCert(dir, names, ips, now)
			if err != nil || !made {
				t.Fatalf("first start: made %v, %v", made, err)
			}
			if fi, err := os.Stat(filepath.Join(dir, WebKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("key file: %v, %v", fi, err)
			}
			pin0, _ := SPKIPin(first.Leaf.PublicKey)
			if tc.prepare != nil {
				tc.prepare(t, dir)
			}
			got, made, err := selfSignedWebCert(dir, tc.names, ips, tc.now)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if made != tc.made {
				t.Errorf("made a new certificate: %v, want %v", made, tc.made)
			}
			if same := bytes.Equal(got.Leaf.Raw, first.Leaf.Raw); same == tc.made {
				t.Errorf("certificate unchanged: %v, want %v", same, !tc.made)
			}
			if pin, _ := SPKIPin(got.Leaf.PublicKey); pin != pin0 {
				t.Errorf("pin changed from %s to %s", pin0, pin)
			}
			if !slices.Equal(got.Leaf.DNSNames, tc.names) || !tc.now.Before(got.Leaf.NotAfter) {
				t.Errorf("certificate for %v until %v, want %v after %v", got.Leaf.DNSNames, got.Leaf.NotAfter, tc.names, tc.now)
			}
			// What the next start reads is what was served.
			again, made, err := selfSignedWebCert(dir, tc.names, ips, tc.now)
			if err != nil || made || !bytes.Equal(again.Leaf.Raw, got.Leaf.Raw) {
				t.Errorf("next start: made %v, %v; same certificate %v", made, err, err == nil && bytes.Equal(again.Leaf.Raw, got.Leaf.Raw))
			}
			// A browser that trusts it checks these names.
			roots := x509.NewCertPool()
			roots.AddCert(got.Leaf)
			for _, name := range append(slices.Clone(tc.names), "127.0.0.1", "::1") {
				if _, err := got.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: tc.now}); err != nil {
					t.Errorf("not valid for %s: %v", name, err)
				}
			}
		})
	}
}

// TestWebPin: the pin `alknet id` prints is the one of the key the node
// will serve, made on first use, or cert_file's, or none with ACME.
func TestWebPin(t *testing.T) {
	dir := t.TempDir()
	pin, err := WebPin(dir, config.TLS{})
	if err != nil || !strings.HasPrefix(pin, "sha256//") || len(pin) != len("sha256//")+44 {
		t.Fatalf("pin %q, %v", pin, err)
	}
	cert, _, err := selfSignedWebCert(dir, []string{"localhost"}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if served, _ := SPKIPin(cert.Leaf.PublicKey); served != pin {
		t.Errorf("pin before the start %s, of the served certificate %s", pin, served)
	}
	if again, _ := WebPin(dir, config.TLS{}); again != pin {
		t.Errorf("pin changed: %s, %s", pin, again)
	}
	files := t.TempDir()
	other, _, err := selfSignedWebCert(files, []string{"localhost"}, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := SPKIPin(other.Leaf.PublicKey)
	if got, err := WebPin(dir, config.TLS{CertFile: filepath.Join(files, WebCertFile), KeyFile: filepath.Join(files, WebKeyFile)}); err != nil || got != want {
		t.Errorf("cert_file pin %q, %v; want %q", got, err, want)
	}
	if got, err := WebPin(dir, config.TLS{ACMEDomains: []string{"node.example.org"}}); err != nil || got != "" {
		t.Errorf("acme pin %q, %v; want none", got, err)
	}
}

func TestWebNames(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name, listen string
		configured   []string
		dns          []string
		ips          []string
		allIfaces    bool
	}{
		{name: "loopback", listen: "127.0.0.1:0", dns: []string{"localhost", host}, ips: []string{"127.0.0.1", "::1"}},
		{name: "a name and configured ones", listen: "Node.Example.org:4433", configured: []string{"alias.example.org", "192.0.2.7"},
			dns: []string{"localhost", host, "node.example.org", "alias.example.org"}, ips: []string{"127.0.0.1", "::1", "192.0.2.7"}},
		{name: "every address", listen: "[::]:4433", dns: []string{"localhost", host}, ips: []string{"127.0.0.1", "::1"}, allIfaces: true},
		{name: "no host", listen: ":4433", dns: []string{"localhost", host}, ips: []string{"127.0.0.1", "::1"}, allIfaces: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dns, ips := webNames(tc.configured, tc.listen)
			for _, want := range tc.dns {
				if want != "" && !slices.Contains(dns, strings.ToLower(want)) {
					t.Errorf("names %v lack %s", dns, want)
				}
			}
			for _, want := range tc.ips {
				if !slices.ContainsFunc(ips, net.ParseIP(want).Equal) {
					t.Errorf("addresses %v lack %s", ips, want)
				}
			}
			if tc.allIfaces {
				addrs, _ := net.InterfaceAddrs()
				for _, a := range addrs {
					if n, ok := a.(*net.IPNet); ok && !slices.ContainsFunc(ips, n.IP.Equal) {
						t.Errorf("addresses %v lack the interface address %s", ips, n.IP)
					}
				}
			} else if len(ips) != len(tc.ips) {
				t.Errorf("addresses %v, want only %v", ips, tc.ips)
			}
		})
	}
}

func writeTestFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func pemString(typ string, der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}
