// Package coretest runs real alknet endpoints on loopback for tests: one
// call starts a node with the given handlers and stops it when the test
// ends.
package coretest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// Node is a running loopback endpoint.
type Node struct {
	// Endpoint is the running endpoint.
	Endpoint *core.Endpoint
	// Key is the node key.
	Key ed25519.PrivateKey
	// ID is the node's NodeID.
	ID core.NodeID
	// Addr is the pinned dial address, "<nodeid>@127.0.0.1:<port>".
	Addr string
	// HostPort is the bare "127.0.0.1:<port>".
	HostPort string
	// Identities is the live directory the endpoint resolves keys with.
	Identities *core.LiveDirectory
}

// NewKey returns a fresh Ed25519 key.
func NewKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// NodeID returns the NodeID of key.
func NodeID(key ed25519.PrivateKey) core.NodeID {
	id, _ := core.NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	return id
}

// Start serves handlers on 127.0.0.1 with a fresh key (unless cfg.Key is
// set) and a live directory (unless cfg.Identities is set), and shuts the
// endpoint down when the test ends. Logs go to the test log unless
// cfg.Logger is set.
func Start(t testing.TB, cfg core.Config, handlers ...core.Handler) *Node {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = NewKey(t)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	live, _ := cfg.Identities.(*core.LiveDirectory)
	if cfg.Identities == nil {
		live = core.NewLiveDirectory(nil, nil)
		cfg.Identities = live
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r, err := core.NewRouter(handlers...)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Router = r
	ep, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve(context.Background()) }()
	t.Cleanup(func() {
		// Longer than the default drain, which ends a drain by itself.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := ep.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, core.ErrEndpointClosed) {
			t.Errorf("serve returned %v, want ErrEndpointClosed", err)
		}
	})
	hostport := ep.Addr().String()
	return &Node{
		Endpoint:   ep,
		Key:        cfg.Key,
		ID:         ep.NodeID(),
		Addr:       ep.NodeID().String() + "@" + hostport,
		HostPort:   hostport,
		Identities: live,
	}
}

// Dial connects to the node over network with key (nil: anonymous) and
// closes the connection when the test ends.
func (n *Node) Dial(t testing.TB, network core.Network, key ed25519.PrivateKey, alpn string) core.Conn {
	t.Helper()
	d := &core.Dialer{Key: key, Network: network}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Dial(ctx, n.Addr, alpn)
	if err != nil {
		t.Fatalf("dial %s over %q: %v", alpn, network, err)
	}
	t.Cleanup(func() { _ = c.CloseWithError(core.CodeNoError, "") })
	return c
}

// testWriter sends log output to t.Log. The endpoint stops in a cleanup,
// before the test ends, so nothing logs after.
type testWriter struct{ t testing.TB }

var _ io.Writer = testWriter{}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// RequireTool returns the path of a stock client program (openssl, ssh,
// git, kdig, …) for an interop test. When it is missing the test is skipped,
// unless ALKNET_REQUIRE_INTEROP=1 (as in CI), which makes that a failure.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("ALKNET_REQUIRE_INTEROP") == "1" {
		t.Fatalf("%s not found and ALKNET_REQUIRE_INTEROP=1: install it (.ci/run lists the packages)", name)
	}
	t.Skipf("%s not found; set ALKNET_REQUIRE_INTEROP=1 to make this fatal", name)
	return ""
}

// WebCertFiles writes a self-signed ECDSA P-256 server certificate for
// name (a host name or an IP address), valid for a day, and its key as PEM
// files in a temporary directory; it returns their paths and the key.
func WebCertFiles(t testing.TB, name string) (certFile, keyFile string, key *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, key
}

// Eventually polls cond every 10ms until it holds, and fails t if it does
// not within d; what names the condition in the failure.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitFilesLow waits up to 5s for core.FilesLow to report low, as it does
// once its cached count of open files expires, and fails t otherwise.
func WaitFilesLow(t testing.TB, low bool) {
	t.Helper()
	Eventually(t, 5*time.Second, fmt.Sprintf("core.FilesLow() to become %v", low), func() bool { return core.FilesLow() == low })
}
