package node

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/dns"
	"github.com/alkdev/alknet/dns/dhttest"
)

// TestRunPublishesToDHT: with [dns] dht on, Run puts the node's
// self-description on the DHT, and its DHT socket closes with the node,
// also when the start fails after the build (goleak checks in TestMain).
func TestRunPublishesToDHT(t *testing.T) {
	nw, err := dhttest.Start(6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nw.Close)
	boot := nw.Addrs()
	dhtOn := func() *Config {
		cfg := &Config{}
		cfg.FS.NoSync = true
		cfg.DNS.DHT, cfg.DNS.DHTBootstrap, cfg.DNS.DHTListen = true, boot[:2], "127.0.0.1:0"
		return cfg
	}
	addr, _, stop := runNode(t, dhtOn(), nil)
	id, _, _ := strings.Cut(addr, "@")
	nid, err := core.ParseNodeID(id)
	if err != nil {
		t.Fatal(err)
	}
	// The resolver starts from every node: on a loaded machine the node's
	// publish can reach only some of them (a put past its timeout counts
	// for nothing), and a traversal from one far node can miss those;
	// what this test is about is that Run published, not the traversal.
	res, err := dns.NewDHT(dns.DHTConfig{Listen: "127.0.0.1:0", Bootstrap: boot, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	coretest.Eventually(t, 30*time.Second, "the node's record on the DHT", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rec, err := res.ResolveNode(ctx, nid)
		return err == nil && rec.Port != 0 && len(rec.ALPNs) > 0
	})
	if err := stop(); err != nil {
		t.Fatalf("Run after the stop: %v", err)
	}

	cfg := dhtOn()
	cfg.TLS.CertFile, cfg.TLS.KeyFile = "/nonexistent/cert.pem", "/nonexistent/key.pem"
	dir := t.TempDir()
	err = Run(context.Background(), Options{
		Config: cfg, ConfigPath: filepath.Join(dir, "alknet.toml"), DataDir: dir, Keys: testKeys(t),
		Listen: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
	})
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Run with a missing certificate: %v", err)
	}
}
