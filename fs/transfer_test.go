package fs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/ipfs/go-cid"
)

// server is a node serving alknet/fs from its own store, with a reader
// (fs:read) and a writer (fs:read, fs:write) peer.
type server struct {
	store  *Store
	node   *coretest.Node
	h      *Handler
	reader ed25519.PrivateKey
	writer ed25519.PrivateKey
}

func startServer(t *testing.T, public bool) *server {
	t.Helper()
	return startServerWith(t, public, core.Limits{})
}

// startServerWith is startServer with the node's limits (zero fields:
// the defaults).
func startServerWith(t *testing.T, public bool, limits core.Limits) *server {
	t.Helper()
	return startServerConfig(t, Config{Public: public}, limits)
}

// startServerConfig is startServer with the handler's config (its Store
// is the server's own) and the node's limits.
func startServerConfig(t *testing.T, cfg Config, limits core.Limits) *server {
	t.Helper()
	sv := &server{store: openStore(t), reader: coretest.NewKey(t), writer: coretest.NewKey(t)}
	dir, err := core.NewDirectory([]core.PeerEntry{
		{ID: "reader", NodeIDs: []core.NodeID{coretest.NodeID(sv.reader)}, Scopes: []string{ScopeRead}},
		{ID: "writer", NodeIDs: []core.NodeID{coretest.NodeID(sv.writer)}, Scopes: []string{ScopeRead, ScopeWrite}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = sv.store
	sv.h, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sv.node = coretest.Start(t, core.Config{Identities: core.NewLiveDirectory(dir, nil), Limits: limits}, sv.h)
	return sv
}

// client dials the server with key (nil: anonymous) and returns a client
// on a fresh local store.
func (sv *server) client(t *testing.T, key ed25519.PrivateKey) (*Client, *Store) {
	t.Helper()
	local := openStore(t)
	conn := sv.node.Dial(t, core.NetworkQUIC, key, ALPN)
	return NewClient(conn, local), local
}

func TestTransferRoundTrips(t *testing.T) {
	sv := startServer(t, false)
	ctx := context.Background()
	big := pattern("tree-big", 5*ChunkSize+3)
	dir := writeTree(t, map[string][]byte{
		"top.txt":         []byte("top"),
		"a/b/c/deep.bin":  big,
		"a/b/sibling.txt": []byte("sibling"),
		"empty/.keep":     nil,
	})
	root, err := sv.store.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("whole directory", func(t *testing.T) {
		cl, local := sv.client(t, sv.reader)
		var calls, last int64
		cl.Progress = func(n int64) { calls, last = calls+1, n }
		got, ts, err := cl.Get(ctx, root, Selection{})
		if err != nil {
			t.Fatal(err)
		}
		// Progress counts the stream's bytes: the blocks and their CAR framing.
		if calls == 0 || last < ts.Bytes {
			t.Errorf("progress: %d calls, last %d bytes; the get moved %d block bytes", calls, last, ts.Bytes)
		}
		cl.Progress = nil
		want, _ := sv.store.Stat(ctx, root)
		if got != root || ts.Blocks != want.Blocks {
			t.Errorf("get = %s with %d blocks, want %s with %d", got, ts.Blocks, root, want.Blocks)
		}
		deep, err := local.Resolve(ctx, root, "a/b/c/deep.bin")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := local.Cat(ctx, deep, &buf); err != nil || !bytes.Equal(buf.Bytes(), big) {
			t.Errorf("deep.bin after get: %d bytes, %v", buf.Len(), err)
		}
		// A second get sends nothing: every block is in the have list.
		if _, ts, err := cl.Get(ctx, root, Selection{}); err != nil || ts.Blocks != 0 {
			t.Errorf("second get moved %d blocks, %v", ts.Blocks, err)
		}
	})

	t.Run("path", func(t *testing.T) {
		cl, local := sv.client(t, sv.reader)
		got, _, err := cl.Get(ctx, root, Selection{Path: "a/b/sibling.txt"})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := local.Cat(ctx, got, &buf); err != nil || buf.String() != "sibling" {
			t.Errorf("sibling.txt = %q, %v", buf.String(), err)
		}
		if _, err := local.Resolve(ctx, root, "a/b/c/deep.bin"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deep.bin resolved after a get of another path: %v", err)
		}
	})

	t.Run("range", func(t *testing.T) {
		cl, local := sv.client(t, sv.reader)
		r := Range{Offset: 2*ChunkSize - 5, Length: 10}
		got, ts, err := cl.Get(ctx, root, Selection{Path: "a/b/c/deep.bin", Range: &r})
		if err != nil {
			t.Fatal(err)
		}
		// root dir, a, b, c, deep.bin's root, two leaves
		if ts.Blocks != 7 {
			t.Errorf("range get moved %d blocks, want 7", ts.Blocks)
		}
		var buf bytes.Buffer
		if _, err := local.ReadRange(ctx, got, r, &buf); err != nil || !bytes.Equal(buf.Bytes(), big[r.Offset:r.Offset+r.Length]) {
			t.Errorf("range = %x, %v", buf.Bytes(), err)
		}
	})

	t.Run("stat and has", func(t *testing.T) {
		cl, _ := sv.client(t, sv.reader)
		st, err := cl.Stat(ctx, root, "a/b/c/deep.bin")
		if err != nil || st.Size != uint64(len(big)) || st.Blocks != 7 {
			t.Errorf("stat = %+v, %v", st, err)
		}
		missing := cid.MustParse("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
		have, err := cl.Has(ctx, []cid.Cid{root, missing})
		if err != nil || len(have) != 2 || !have[0] || have[1] {
			t.Errorf("has = %v, %v", have, err)
		}
		if _, err := cl.Stat(ctx, missing, ""); !errors.Is(err, ErrNotFound) {
			t.Errorf("stat of a missing root: %v", err)
		}
	})

	t.Run("put", func(t *testing.T) {
		cl, local := sv.client(t, sv.writer)
		newRoot := addFile(t, local, pattern("pushed", 3*ChunkSize))
		var last int64
		cl.Progress = func(n int64) { last = n }
		ts, err := cl.Put(ctx, newRoot, "pushed")
		if err != nil {
			t.Fatal(err)
		}
		if last < ts.Bytes || ts.Bytes < 3*ChunkSize {
			t.Errorf("progress ended at %d bytes; the put sent %d block bytes", last, ts.Bytes)
		}
		if ts.Blocks != 4 {
			t.Errorf("put sent %d blocks, want 4", ts.Blocks)
		}
		if p := sv.store.Pins(); len(p) != 1 || p[0].CID != newRoot.String() {
			t.Errorf("server pins = %v", p)
		}
		if ts, err := cl.Put(ctx, newRoot, ""); err != nil || ts.Blocks != 0 {
			t.Errorf("second put sent %d blocks, %v", ts.Blocks, err)
		}
	})
}

func TestTransferAccess(t *testing.T) {
	ctx := context.Background()
	sv := startServer(t, false)
	root := addFile(t, sv.store, []byte("secret"))

	anon, anonLocal := sv.client(t, nil)
	var re *RemoteError
	if _, _, err := anon.Get(ctx, root, Selection{}); !errors.As(err, &re) || re.Code != CodeUnauthenticated {
		t.Errorf("anonymous get: %v, want unauthenticated", err)
	}
	reader, local := sv.client(t, sv.reader)
	own := addFile(t, local, []byte("mine"))
	if _, err := reader.Put(ctx, own, ""); !errors.As(err, &re) || re.Code != CodeForbidden {
		t.Errorf("put without fs:write: %v, want forbidden", err)
	}
	if ok, _ := sv.store.Has(ctx, own); ok {
		t.Error("a refused put stored its block")
	}

	sv.h.SetPublic(true)
	if _, _, err := anon.Get(ctx, root, Selection{}); err != nil {
		t.Errorf("anonymous get on a public node: %v", err)
	}
	addFile(t, anonLocal, []byte("mine"))
	if _, err := anon.Put(ctx, own, ""); !errors.As(err, &re) || re.Code != CodeUnauthenticated {
		t.Errorf("anonymous put on a public node: %v, want unauthenticated", err)
	}
}

// TestTransferResume interrupts a get (the client already holds part of
// the DAG, as after a broken transfer) and checks that the retry fetches
// only the missing blocks.
func TestTransferResume(t *testing.T) {
	ctx := context.Background()
	sv := startServer(t, false)
	root := addFile(t, sv.store, pattern("resume", 20*ChunkSize))
	data, order := exportBytes(t, sv.store, root)

	cl, local := sv.client(t, sv.reader)
	cut := len(data) - 8*(ChunkSize+39) - 100 // 8 whole leaves and part of one more are lost
	if _, _, err := local.ImportCAR(ctx, bytes.NewReader(data[:cut])); err == nil {
		t.Fatal("import of a cut CAR succeeded")
	}
	held := countBlocks(t, local)
	if held != len(order)-9 {
		t.Fatalf("holding %d blocks after the cut, want %d", held, len(order)-9)
	}
	_, ts, err := cl.Get(ctx, root, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if ts.Blocks != 9 {
		t.Errorf("resumed get moved %d blocks, want 9", ts.Blocks)
	}
}

// rogue answers every get with a fixed CAR, whatever was asked.
type rogue struct{ car []byte }

func (r rogue) ALPNs() []string { return []string{ALPN} }

func (r rogue) Serve(ctx context.Context, conn core.Conn) error {
	st, err := conn.AcceptStream(ctx)
	if err != nil {
		return nil
	}
	if err := writeFrame(st, Response{}); err != nil {
		return nil
	}
	_, _ = st.Write(r.car)
	_ = st.Close()
	<-conn.Context().Done()
	return nil
}

func TestTransferFromBadServer(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	root := addFile(t, src, pattern("bad-server", 3*ChunkSize))
	good, order := exportBytes(t, src, root)
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-1] ^= 1
	tests := []struct {
		name string
		car  []byte
		bad  cid.Cid
	}{
		{"corrupted", corrupt, order[len(order)-1]},
		{"truncated", good[:len(good)-(ChunkSize+39)], order[len(order)-1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			node := coretest.Start(t, core.Config{}, rogue{car: tc.car})
			local := openStore(t)
			cl := NewClient(node.Dial(t, core.NetworkQUIC, nil, ALPN), local)
			_, _, err := cl.Get(ctx, root, Selection{})
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.bad.String())) {
				t.Fatalf("get from a bad server: %v, want an error naming %s", err, tc.bad)
			}
			if ok, _ := local.Has(ctx, tc.bad); ok {
				t.Errorf("%s was stored", tc.bad)
			}
		})
	}
}

// TestTransferLarge streams a file much larger than the heap growth it
// allows, through the whole path: add, get over QUIC, read back.
func TestTransferLarge(t *testing.T) {
	size := 64 << 20
	if testing.Short() {
		size = 16 << 20
	}
	ctx := context.Background()
	sv := startServer(t, false)
	src := writeTree(t, map[string][]byte{"f": pattern("large", size)})
	root, err := sv.store.Add(ctx, src+"/f", AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cl, local := sv.client(t, sv.reader)
	var ts TransferStats
	growth := heapGrowth(func() { _, ts, err = cl.Get(ctx, root, Selection{}) })
	if err != nil {
		t.Fatal(err)
	}
	if ts.Bytes < int64(size) {
		t.Errorf("moved %d bytes, want at least %d", ts.Bytes, size)
	}
	t.Logf("get: %d MiB moved; heap grew by %d MiB at most", size>>20, growth>>20)
	if growth > int64(size/2) {
		t.Errorf("get: heap grew by %d bytes for a %d-byte transfer", growth, size)
	}
	var n countWriter
	if _, err := local.Cat(ctx, root, &n); err != nil || int(n) != size {
		t.Errorf("cat after get: %d bytes, %v", n, err)
	}

	// Client.Cat writes the file while it arrives: the same bound.
	cl, _ = sv.client(t, sv.reader)
	var written int64
	n = 0
	growth = heapGrowth(func() { _, written, _, err = cl.Cat(ctx, root, Selection{}, &n) })
	if err != nil || written != int64(size) || int(n) != size {
		t.Fatalf("cat: %d bytes (%d reported), %v", n, written, err)
	}
	t.Logf("cat: heap grew by %d MiB at most", growth>>20)
	if growth > int64(size/2) {
		t.Errorf("cat: heap grew by %d bytes for a %d-byte transfer", growth, size)
	}
}

// heapGrowth runs f and returns by how much the heap in use grew above
// its size before f, at most, sampled every 20 ms.
func heapGrowth(f func()) int64 {
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	return int64(peak.Load()) - int64(base.HeapInuse)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}
