package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestJSONOutput: the listing and measuring commands print JSON with
// --json, each decoding into the fields scripts read.
func TestJSONOutput(t *testing.T) {
	cdir, cid := clientID(t)
	n := startNode(t, fmt.Sprintf("[[peers]]\nid = \"me\"\nkeys = [%q]\nscopes = [\"perf\"]\n", cid))
	tree, big := fsTree(t)
	root := addQ(t, cdir, tree)[0]

	decode := func(t *testing.T, out string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("not JSON (%v):\n%s", err, out)
		}
	}
	t.Run("ops", func(t *testing.T) {
		var ops []struct{ Name, Type, Description string }
		decode(t, run(t, "", "ops", n.addr, "--json", "--data-dir", cdir), &ops)
		found := false
		for _, o := range ops {
			found = found || o.Name == "sys/ticks" && o.Type == "subscription" && o.Description != ""
		}
		if !found {
			t.Errorf("ops --json lacks sys/ticks: %+v", ops)
		}
	})
	t.Run("fs ls", func(t *testing.T) {
		var entries []struct {
			Name, CID, Type string
			Size            uint64
		}
		decode(t, run(t, "", "fs", "ls", "--json", "--data-dir", cdir, root+"/sub"), &entries)
		found := false
		for _, e := range entries {
			found = found || e.Name == "big" && e.Type == "file" && e.Size == uint64(len(big)) && e.CID != ""
		}
		if !found {
			t.Errorf("fs ls --json lacks big: %+v", entries)
		}
	})
	t.Run("fs stat", func(t *testing.T) {
		var st struct {
			CID, Type string
			Size      uint64
			Blocks    int
		}
		decode(t, run(t, "", "fs", "stat", "--json", "--data-dir", cdir, root+"/sub/big"), &st)
		if st.Type != "file" || st.Size != uint64(len(big)) || st.Blocks < 2 {
			t.Errorf("fs stat --json: %+v", st)
		}
	})
	t.Run("fs pins", func(t *testing.T) {
		var pins []struct{ Name, CID string }
		decode(t, run(t, "", "fs", "pins", "--json", "--data-dir", cdir), &pins)
		found := false
		for _, p := range pins {
			found = found || p.CID == root
		}
		if !found {
			t.Errorf("fs pins --json lacks %s: %+v", root, pins)
		}
		// No pins is [], not null.
		empty, _ := clientID(t)
		if out := run(t, "", "fs", "pins", "--json", "--data-dir", empty); out != "[]\n" {
			t.Errorf("no pins: %q", out)
		}
	})
	t.Run("git repos", func(t *testing.T) {
		if out := run(t, "", "git", "repos", "--json", "--data-dir", cdir, n.addr); out != "[]\n" {
			t.Errorf("git repos --json on a node without repositories: %q", out)
		}
	})
	t.Run("perf", func(t *testing.T) {
		var res struct {
			Transport string
			Streams   int
			Upload    struct {
				Bytes   int64
				Seconds float64
				Mbps    float64
			}
			Download struct{ Bytes int64 }
		}
		decode(t, run(t, "", "perf", n.addr, "--json", "--bytes", "100000", "--network", "tcp", "--data-dir", cdir), &res)
		if res.Transport != "tcp+tls" || res.Streams != 1 || res.Upload.Bytes != 100000 || res.Download.Bytes != 100000 || res.Upload.Seconds <= 0 || res.Upload.Mbps <= 0 {
			t.Errorf("perf --json: %+v", res)
		}
	})
	t.Run("resolve", func(t *testing.T) {
		var out string
		deadline := time.Now().Add(10 * time.Second)
		for {
			o, e, err := runErr(t, "", "resolve", "--json", "--data-dir", cdir, "--resolver", n.addr, n.id)
			if err == nil {
				out = o
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("resolve: %v\n%s", err, e)
			}
			time.Sleep(100 * time.Millisecond)
		}
		var rec struct {
			NodeID string
			ALPNs  []string
			Port   uint16
			Signed time.Time
		}
		decode(t, out, &rec)
		if rec.NodeID != n.id || len(rec.ALPNs) == 0 || rec.Port == 0 || rec.Signed.IsZero() {
			t.Errorf("resolve --json: %+v", rec)
		}
	})
}
