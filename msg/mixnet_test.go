package msg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/msg/sphinx"
)

// testNet is three mixes (one per layer), a home node hosting Alice and
// Bob, a directory node publishing the mixes, and the directory as Alice
// fetched it, all on loopback.
type testNet struct {
	alice, bob party
	home       *coretest.Node
	mixes      []*Mix
	mixP       []party
	mixNodes   []*coretest.Node
	mixInboxes []*Inbox
	published  []PublishedMix
	dir        *MixDirectory
	dirNode    party
	dirAddr    string
}

// newTestNet starts the network; each mix sends loop cover packets at
// coverRate per second. Options change each mix's configuration (the
// benchmarks set its delays).
func newTestNet(t testing.TB, coverRate float64, opts ...func(*MixConfig)) *testNet {
	t.Helper()
	tn := &testNet{alice: newParty(t), bob: newParty(t), dirNode: newParty(t)}
	homeP := newParty(t)
	for range 3 {
		tn.mixP = append(tn.mixP, newParty(t))
	}
	addrs := map[core.NodeID]string{}
	var mu sync.Mutex
	resolve := func(id core.NodeID) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := addrs[id]; ok {
			return a, nil
		}
		return "", fmt.Errorf("no address for %s", id.ShortString())
	}
	aliceRec, _ := SignKeyRecord(tn.alice.node, tn.alice.key.PublicKey())
	bobRec, _ := SignKeyRecord(tn.bob.node, tn.bob.key.PublicKey())
	tn.home, _ = serveMsg(t, homeP, filepath.Join(t.TempDir(), "home.db"), nil, func(c *Config) {
		c.Hosted = []KeyRecord{aliceRec, bobRec}
	})
	addrs[homeP.id] = tn.home.Addr
	addrs[tn.alice.id] = tn.home.Addr
	addrs[tn.bob.id] = tn.home.Addr

	relayers := []core.PeerEntry{grant(tn.alice, RelayScope), grant(tn.bob, RelayScope)}
	for _, p := range tn.mixP {
		relayers = append(relayers, grant(p, RelayScope))
	}
	d, _ := core.NewDirectory(relayers, nil)
	tn.home.Identities.Store(d)
	dirClient := &DirectoryClient{Dialer: &core.Dialer{Key: tn.alice.node}}
	for i, p := range tn.mixP {
		cfg := MixConfig{
			Seed: p.key.Bytes(), Dialer: &core.Dialer{Key: p.node}, Resolve: resolve,
			MeanDelay: 2 * time.Millisecond, BatchInterval: 2 * time.Millisecond,
			CoverRate: coverRate, Directory: dirClient.Get,
		}
		for _, o := range opts {
			o(&cfg)
		}
		mix, err := NewMix(cfg)
		if err != nil {
			t.Fatal(err)
		}
		n, h := serveMsg(t, p, filepath.Join(t.TempDir(), fmt.Sprintf("mix%d.db", i)), relayers, func(c *Config) { c.Mix = mix })
		mu.Lock()
		addrs[p.id] = n.Addr
		mu.Unlock()
		tn.mixes = append(tn.mixes, mix)
		tn.mixNodes = append(tn.mixNodes, n)
		tn.mixInboxes = append(tn.mixInboxes, h.cfg.Inbox)
		tn.published = append(tn.published, PublishedMix{Addr: n.Addr, Layer: i})
	}
	// The directory node collects the mixes' key records and signs; Alice
	// fetches and verifies the directory as a sender does.
	pub, err := NewPublisher(PublisherConfig{Key: tn.dirNode.node, Dialer: &core.Dialer{Key: tn.dirNode.node}, Mixes: tn.published})
	if err != nil {
		t.Fatal(err)
	}
	dn, _ := serveMsg(t, tn.dirNode, filepath.Join(t.TempDir(), "dir.db"), nil, func(c *Config) { c.Directory = pub })
	tn.dirAddr = dn.Addr
	ctx := ctxT(t)
	if err := pub.Publish(ctx, EpochAt(time.Now(), DefaultEpochLength)); err != nil {
		t.Fatal(err)
	}
	dirClient.Servers = []string{dn.Addr}
	if tn.dir, err = dirClient.Get(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, mix := range tn.mixes {
		wg.Go(func() { mix.Run(runCtx) })
	}
	return tn
}

// watch collects p's inbox entries at the home node.
func (tn *testNet) watch(t testing.TB, p party) <-chan Entry {
	ch := make(chan Entry, 16)
	s := session(t, p, tn.home.Addr, core.NetworkQUIC)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, 0, func(e Entry) error { ch <- e; return nil })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

func next(t testing.TB, ch <-chan Entry) Entry {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(15 * time.Second):
		t.Fatal("nothing arrived")
		return Entry{}
	}
}

func TestMixnet(t *testing.T) {
	tn := newTestNet(t, 0)
	ctx := ctxT(t)
	alice, bob := tn.alice, tn.bob
	d := &core.Dialer{Key: alice.node}
	bobInbox := tn.watch(t, bob)

	t.Run("message arrives intact, fragmented", func(t *testing.T) {
		body := bytes.Repeat([]byte("mixnet "), 1000) // 7000 bytes: several packets
		sent, err := SendMixnet(ctx, d, tn.dir, alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		e := next(t, bobInbox)
		m, err := bob.opener().Open(e.Data, e.Received)
		if err != nil || !bytes.Equal(m.Body, body) || m.From != alice.id || m.ID != sent.ID {
			t.Fatalf("open: %v", err)
		}
		for i, mix := range tn.mixes {
			if st := mix.Stats(); st.Accepted < 4 {
				t.Errorf("mix %d accepted %d packets, want one per fragment", i, st.Accepted)
			}
		}
	})

	t.Run("replayed packet dropped", func(t *testing.T) {
		route := tn.dir.Mixes // one per layer, in order
		env, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: []byte("once")})
		frags, _ := fragment(env)
		var dest [sphinx.IDSize]byte
		copy(dest[:], bob.id.PublicKey())
		p, err := sphinx.NewPacket(hops(route), dest, frags[0])
		if err != nil {
			t.Fatal(err)
		}
		s := session(t, alice, tn.mixNodes[0].Addr, core.NetworkAuto)
		if err := s.relay(ctx, p); err != nil {
			t.Fatal(err)
		}
		var re *RemoteError
		if err := s.relay(ctx, p); !errors.As(err, &re) || re.Status != StatusDuplicate {
			t.Fatalf("replay: %v", err)
		}
		next(t, bobInbox) // the first copy arrives, once
		select {
		case e := <-bobInbox:
			t.Fatalf("a second copy arrived: entry %d", e.ID)
		case <-time.After(200 * time.Millisecond):
		}
	})

	t.Run("tagged payload not delivered", func(t *testing.T) {
		exit := tn.mixes[2]
		failedBefore, exitedBefore := tn.mixes[1].Stats().Failed, exit.Stats().Exited
		env, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: []byte("tagged")})
		frags, _ := fragment(env)
		var dest [sphinx.IDSize]byte
		copy(dest[:], bob.id.PublicKey())
		p, _ := sphinx.NewPacket(hops(tn.dir.Mixes), dest, frags[0])
		p[sphinx.HeaderSize+100] ^= 0x01 // a tagging attacker on the first link
		s := session(t, alice, tn.mixNodes[0].Addr, core.NetworkAuto)
		if err := s.relay(ctx, p); err != nil {
			t.Fatalf("the entry cannot see the tag, so it accepts: %v", err)
		}
		// The exit refuses it: the middle mix counts a refused packet.
		deadline := time.Now().Add(15 * time.Second)
		for tn.mixes[1].Stats().Failed == failedBefore {
			if time.Now().After(deadline) {
				t.Fatal("the tagged packet was not refused by the exit")
			}
			time.Sleep(5 * time.Millisecond)
		}
		if n := exit.Stats().Exited; n != exitedBefore {
			t.Fatalf("the exit delivered %d more payloads", n-exitedBefore)
		}
		select {
		case e := <-bobInbox:
			t.Fatalf("a tagged message arrived: entry %d", e.ID)
		default:
		}
	})

	t.Run("SURB reply arrives", func(t *testing.T) {
		aliceInbox := tn.watch(t, alice)
		surb, keys, err := NewReplyBlock(tn.dir, alice.id)
		if err != nil {
			t.Fatal(err)
		}
		surbBytes, _ := surb.MarshalBinary()
		if _, err := SendMixnet(ctx, d, tn.dir, alice.node, bob.key.PublicKey(), Message{To: bob.id, ContentType: "application/x-alknet-surb", Body: surbBytes}); err != nil {
			t.Fatal(err)
		}
		e := next(t, bobInbox)
		m, err := bob.opener().Open(e.Data, e.Received)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sphinx.ParseSURB(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		bd := &core.Dialer{Key: bob.node}
		if _, err := SendReply(ctx, bd, tn.dir, got, bob.node, alice.key.PublicKey(), Message{To: alice.id, Body: []byte("reply")}); err != nil {
			t.Fatal(err)
		}
		r := next(t, aliceInbox)
		if r.Kind != KindReply {
			t.Fatalf("kind %d", r.Kind)
		}
		env, err := ReplyEnvelope(keys, r.Data)
		if err != nil {
			t.Fatal(err)
		}
		rm, err := alice.opener().Open(env, r.Received)
		if err != nil || string(rm.Body) != "reply" || rm.From != bob.id {
			t.Fatalf("reply: %v", err)
		}
		// The SURB is single-use: a second reply is dropped as a replay.
		if _, err := SendReply(ctx, bd, tn.dir, got, bob.node, alice.key.PublicKey(), Message{To: alice.id, Body: []byte("again")}); err == nil {
			t.Fatal("a SURB was used twice")
		}
	})
}
