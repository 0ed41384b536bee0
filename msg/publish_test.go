package msg

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
)

// TestDirectoryPublishing: a directory node collects the mixes' key
// records of the current epoch and signs; clients fetch, verify and cache
// it, and refuse directories from untrusted signers or out of date.
func TestDirectoryPublishing(t *testing.T) {
	tn := newTestNet(t, 0)
	ctx := ctxT(t)
	e := EpochAt(time.Now(), DefaultEpochLength)

	t.Run("lists each mix with its epoch key", func(t *testing.T) {
		d := tn.dir
		if d.Signer != tn.dirNode.id || len(d.Mixes) != 3 || !d.Expires.Equal(EpochStart(e+1, DefaultEpochLength).Add(DefaultEpochGrace/2)) {
			t.Fatalf("directory %+v", d)
		}
		for i, m := range d.Mixes {
			k, _ := MixEpochKey(tn.mixP[i].key.Bytes(), e)
			if m.Node != tn.mixP[i].id || m.Layer != i || m.Epoch != e || !m.Key.Equal(k.PublicKey()) {
				t.Fatalf("mix %d: %+v", i, m)
			}
		}
		c := &DirectoryClient{Dialer: &core.Dialer{Key: tn.bob.node}, Servers: []string{tn.dirAddr}}
		a, err := c.Get(ctx)
		b, err2 := c.Get(ctx)
		if err != nil || err2 != nil || a != b {
			t.Fatalf("cache: %v %v, same=%v", err, err2, a == b)
		}
	})

	t.Run("signed by an untrusted key refused", func(t *testing.T) {
		relay, other := newParty(t), newParty(t)
		pub, err := NewPublisher(PublisherConfig{Key: other.node, Dialer: &core.Dialer{Key: other.node}, Mixes: tn.published})
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
		n, _ := serveMsg(t, relay, filepath.Join(t.TempDir(), "relay.db"), nil, func(c *Config) { c.Directory = pub })
		c := &DirectoryClient{Dialer: &core.Dialer{Key: tn.bob.node}, Servers: []string{n.Addr}}
		if _, err := c.Get(ctx); err == nil || !strings.Contains(err.Error(), "not trusted") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("expired refused", func(t *testing.T) {
		late := func() time.Time { return time.Now().Add(DefaultEpochLength + DefaultEpochGrace) }
		c := &DirectoryClient{Dialer: &core.Dialer{Key: tn.bob.node}, Servers: []string{tn.dirAddr}, Clock: late}
		if _, err := c.Get(ctx); err == nil || !strings.Contains(err.Error(), "not valid now") {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("unreachable mix left out, empty layer not published", func(t *testing.T) {
		gone := newParty(t).id.String() + "@127.0.0.1:1"
		d := &core.Dialer{Key: tn.dirNode.node, Network: core.NetworkTCP}
		pub, err := NewPublisher(PublisherConfig{Key: tn.dirNode.node, Dialer: d, Mixes: append(tn.published, PublishedMix{Addr: gone, Layer: 1})})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- pub.Run(runCtx) }()
		deadline := time.Now().Add(15 * time.Second)
		for pub.Signed() == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
		got, err := ParseDirectory(pub.Signed(), []core.NodeID{tn.dirNode.id}, time.Now())
		if err != nil || len(got.Mixes) != 3 {
			t.Fatalf("published %v, %v", got, err)
		}
		pub, _ = NewPublisher(PublisherConfig{Key: tn.dirNode.node, Dialer: d, Mixes: append(tn.published[:2:2], PublishedMix{Addr: gone, Layer: 2})})
		if err := pub.Publish(ctx, e); err == nil || pub.Signed() != nil {
			t.Fatal("a directory with an empty layer was published")
		}
	})

	t.Run("key records only from mixes, for the current and next epoch", func(t *testing.T) {
		s := session(t, tn.alice, tn.mixNodes[0].Addr, core.NetworkAuto)
		if rec, err := s.MixKey(ctx, e+1); err != nil || rec.Node != tn.mixP[0].id || rec.Epoch != e+1 {
			t.Fatalf("next epoch: %+v %v", rec, err)
		}
		var re *RemoteError
		if _, err := s.MixKey(ctx, e+2); !errors.As(err, &re) || re.Status != StatusNotAvailable {
			t.Fatalf("epoch e+2: %v", err)
		}
		h := session(t, tn.alice, tn.home.Addr, core.NetworkAuto)
		if _, err := h.MixKey(ctx, e); !errors.As(err, &re) || re.Status != StatusUnsupported {
			t.Fatalf("not a mix: %v", err)
		}
		if _, err := fetchDirectory(ctx, &core.Dialer{Key: tn.alice.node}, tn.home.Addr, nil, time.Now); !errors.As(err, &re) || re.Status != StatusNotAvailable {
			t.Fatalf("not a directory node: %v", err)
		}
	})

	t.Run("config checked", func(t *testing.T) {
		_, err := NewPublisher(PublisherConfig{Key: tn.dirNode.node, Dialer: &core.Dialer{}, Mixes: tn.published[:2]})
		if err == nil || !strings.Contains(err.Error(), "no mix in layer 2") {
			t.Fatalf("got %v", err)
		}
		_, err = NewPublisher(PublisherConfig{Key: tn.dirNode.node, Dialer: &core.Dialer{}, Mixes: tn.published, Layers: 6})
		if err == nil || !strings.Contains(err.Error(), "Layers") {
			t.Fatalf("6 layers: %v", err)
		}
	})
}

// TestCoverTraffic: mixes send loop cover packets through the mixnet; each
// comes back to its origin, which counts and drops it; no inbox gets one.
func TestCoverTraffic(t *testing.T) {
	tn := newTestNet(t, 20)
	bobInbox := tn.watch(t, tn.bob)
	deadline := time.Now().Add(20 * time.Second)
	var cover, loops uint64
	for loops < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d loops came back of %d sent", loops, cover)
		}
		time.Sleep(20 * time.Millisecond)
		cover, loops = 0, 0
		for _, m := range tn.mixes {
			st := m.Stats()
			cover, loops = cover+st.Cover, loops+st.Loops
		}
	}
	if cover < loops {
		t.Fatalf("%d loops back, %d sent", loops, cover)
	}
	for i, in := range tn.mixInboxes {
		if es, err := in.List(tn.mixP[i].id, 0, 10); err != nil || len(es) != 0 {
			t.Fatalf("mix %d's inbox holds %d entries (%v)", i, len(es), err)
		}
	}
	select {
	case e := <-bobInbox:
		t.Fatalf("a cover packet reached Bob: entry %d", e.ID)
	default:
	}
}
