package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/dns/dhttest"
)

// TestDHTResolveByNodeID: a node with [dns] dht = true publishes its
// self-description on a private Mainline DHT; a client with no resolver,
// only the DHT, resolves its bare NodeID and calls it.
func TestDHTResolveByNodeID(t *testing.T) {
	nw, err := dhttest.Start(8)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nw.Close)
	boot := nw.Addrs()
	n := startNode(t, fmt.Sprintf("[dns]\ndht = true\ndht_bootstrap = [%q, %q]\ndht_listen = \"127.0.0.1:0\"\n", boot[0], boot[1]))
	n.waitLog(t, `dns: dht.*addr=127\.0\.0\.1:`)

	// The client starts elsewhere in the DHT; --dht turns it on.
	cdir, _ := clientID(t)
	writeFile(t, filepath.Join(cdir, "alknet.toml"), fmt.Sprintf("[dns]\ndht_bootstrap = [%q]\n", boot[7]))
	var out string
	deadline := time.Now().Add(15 * time.Second)
	for {
		o, e, err := runErr(t, "", "resolve", "--dht", "--data-dir", cdir, n.id)
		if err == nil {
			out = o
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resolve --dht: %v\n%s", err, e)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range []string{"node     " + n.id, "alknet/call", "address  127.0.0.1"} {
		if !strings.Contains(out, w) {
			t.Errorf("resolve --dht output lacks %q:\n%s", w, out)
		}
	}

	out = run(t, "", "call", n.id, "services/ping", "--data-dir", cdir, "--dht")
	if !strings.Contains(out, `"pong":true`) {
		t.Errorf("call by NodeID over the DHT: %s", out)
	}
	// Without --dht and with the DHT off in the config, a bare NodeID is
	// still no address.
	if _, stderr, err := runErr(t, "", "call", n.id, "services/ping", "--data-dir", cdir); err == nil || !strings.Contains(stderr, "no resolver is configured") {
		t.Errorf("a bare NodeID with the DHT off: %v %s", err, stderr)
	}
	// [dns] dht = true in the client's config does what --dht does.
	writeFile(t, filepath.Join(cdir, "alknet.toml"), fmt.Sprintf("[dns]\ndht = true\ndht_bootstrap = [%q]\n", boot[4]))
	out = run(t, "", "call", n.id, "services/ping", "--data-dir", cdir)
	if !strings.Contains(out, `"pong":true`) {
		t.Errorf("call by NodeID with [dns] dht = true: %s", out)
	}
	// resolve wants a source.
	if _, stderr, err := runErr(t, "", "resolve", "--data-dir", t.TempDir(), n.id); err == nil || !strings.Contains(stderr, "no resolver") {
		t.Errorf("resolve with no source: %v %s", err, stderr)
	}
}
