package nat

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/benchtest"
	"github.com/alkdev/alknet/dns/dhttest"
)

// TestReachByDHT: a private Mainline DHT of ten nodes lives in the public
// namespace; the worker behind its NAT puts its signed record there, and
// the client behind the other NAT, given only the worker's NodeID and the
// DHT's bootstrap nodes (no resolver, no --via), resolves the record and
// reaches the worker through the head it names.
func TestReachByDHT(t *testing.T) {
	NeedNAT(t)
	NeedTools(t, "ssh-keygen")
	top := StartTestTopology(t, Cone, Symmetric)
	var nw *dhttest.Network
	if err := top.Public.Do(func() (err error) {
		nw, err = dhttest.StartAt(PublicAddr.String(), 10)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nw.Close)
	boot, err := json.Marshal(nw.Addrs())
	if err != nil {
		t.Fatal(err)
	}
	dnsLines := fmt.Sprintf("dht = true\ndht_bootstrap = %s\n", boot)
	r, err := StartRig(benchtest.TestContext(t), alknetBin(t), top, RigOptions{WorkerDNS: dnsLines})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	f, err := os.OpenFile(filepath.Join(r.ClientDir, "alknet.toml"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n[dns]\n" + dnsLines); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	ctx := benchtest.TestContext(t)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := r.Alknet(ctx, 0, "", "resolve", "--json", r.WorkerID)
		var rec struct{ Via []string }
		if err == nil && json.Unmarshal(out, &rec) == nil && len(rec.Via) == 1 {
			if rec.Via[0] != r.HeadAddr {
				t.Fatalf("the record on the DHT names via %v, want %s", rec.Via, r.HeadAddr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no record with via on the DHT: %v\n%s", err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	out, err := r.Alknet(ctx, 0, "", echoArgs(r.WorkerID, "found on the DHT")...)
	if err != nil {
		t.Fatalf("call by NodeID through the DHT: %v\n%s", err, out)
	}
	var echo map[string]string
	if err := json.Unmarshal(out, &echo); err != nil || echo["caller"] != rigPeer || echo["message"] != "found on the DHT" {
		t.Errorf("sys/echo by NodeID printed %q", out)
	}
}
