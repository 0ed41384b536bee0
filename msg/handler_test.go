package msg

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// grant is a peer entry giving p the scopes.
func grant(p party, scopes ...string) core.PeerEntry {
	return core.PeerEntry{ID: p.id.ShortString(), NodeIDs: []core.NodeID{p.id}, Scopes: scopes}
}

// serveMsg runs a msg handler for p on loopback with the inbox at path.
func serveMsg(t testing.TB, p party, path string, peers []core.PeerEntry, mod func(*Config)) (*coretest.Node, *Handler) {
	t.Helper()
	in := openInbox(t, InboxConfig{Path: path})
	cfg := Config{NodeKey: p.node, Key: p.key, Inbox: in}
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := core.NewDirectory(peers, nil)
	if err != nil {
		t.Fatal(err)
	}
	coreCfg := core.Config{Key: p.node, Identities: core.NewLiveDirectory(d, nil)}
	if _, ok := t.(*testing.B); ok {
		coreCfg.Logger = slog.New(slog.DiscardHandler) // a benchmark's log is printed with its result
	}
	n := coretest.Start(t, coreCfg, h)
	return n, h
}

func session(t testing.TB, p party, addr string, network core.Network) *Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, &core.Dialer{Key: p.node, Network: network}, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestDepositRestartFetchAck: Alice deposits at Bob's home node while Bob
// is offline; the home node restarts; Bob fetches, opens, acks; it is gone.
func TestDepositRestartFetchAck(t *testing.T) {
	alice, bob, home := newParty(t), newParty(t), newParty(t)
	path := filepath.Join(t.TempDir(), "inbox.db")
	bobRec, _ := SignKeyRecord(bob.node, bob.key.PublicKey())
	hosted := func(c *Config) { c.Hosted = []KeyRecord{bobRec} }
	var sent Message
	t.Run("deposit", func(t *testing.T) {
		n, _ := serveMsg(t, home, path, []core.PeerEntry{grant(alice, SendScope)}, hosted)
		s := session(t, alice, n.Addr, core.NetworkAuto)
		var err error
		sent, err = s.Send(ctxT(t), alice.node, Message{To: bob.id, ContentType: TextType, Body: []byte("while you were out")})
		if err != nil {
			t.Fatal(err)
		}
	})
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		t.Run("after restart over "+string(network), func(t *testing.T) {
			n, _ := serveMsg(t, home, path, nil, hosted)
			s := session(t, bob, n.Addr, network)
			ctx := ctxT(t)
			es, err := s.Fetch(ctx, 0, 0)
			if err != nil || len(es) != 1 {
				t.Fatalf("fetch: %v, %d entries", err, len(es))
			}
			m, err := bob.opener().Open(es[0].Data, es[0].Received)
			if err != nil || string(m.Body) != "while you were out" || m.From != alice.id || m.ID != sent.ID {
				t.Fatalf("open: %v", err)
			}
			if network == core.NetworkTCP {
				if n, err := s.Ack(ctx, es[0].ID); err != nil || n != 1 {
					t.Fatalf("ack: %d %v", n, err)
				}
				if es, _ := s.Fetch(ctx, 0, 0); len(es) != 0 {
					t.Fatal("acked entry still there")
				}
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	alice, bob, mallory, carol := newParty(t), newParty(t), newParty(t), newParty(t)
	n, _ := serveMsg(t, bob, filepath.Join(t.TempDir(), "inbox.db"), []core.PeerEntry{grant(alice, SendScope), grant(mallory)}, nil)
	ctx := ctxT(t)
	as := session(t, alice, n.Addr, core.NetworkAuto)
	ms := session(t, mallory, n.Addr, core.NetworkAuto)

	status := func(err error) Status {
		var re *RemoteError
		if errors.As(err, &re) {
			return re.Status
		}
		t.Fatalf("want a refusal, got %v", err)
		return 0
	}
	env, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Body: []byte("hi")})
	if got := status(ms.Deliver(ctx, env)); got != StatusForbidden {
		t.Fatalf("depositor without msg:send: %v", got)
	}
	if err := as.Deliver(ctx, env); err != nil {
		t.Fatal(err)
	}
	if got := status(as.Deliver(ctx, env)); got != StatusDuplicate {
		t.Fatalf("replay: %v", got)
	}
	// Re-sealed with the same message id: a different ciphertext, same id.
	_, sent, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id})
	env1, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, ID: sent.ID})
	env2, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, ID: sent.ID})
	as.Deliver(ctx, env1)
	if got := status(as.Deliver(ctx, env2)); got != StatusDuplicate {
		t.Fatalf("same id again: %v", got)
	}
	old, _, _ := Seal(alice.node, bob.key.PublicKey(), Message{To: bob.id, Time: time.Now().Add(-time.Hour)})
	if got := status(as.Deliver(ctx, old)); got != StatusRejected {
		t.Fatalf("skewed: %v", got)
	}
	toCarol, _, _ := Seal(alice.node, carol.key.PublicKey(), Message{To: carol.id})
	if got := status(as.Deliver(ctx, toCarol)); got != StatusNotHosted {
		t.Fatalf("not hosted: %v", got)
	}
	bad := append([]byte{}, env...)
	bad[len(bad)-3] ^= 1
	if got := status(as.Deliver(ctx, bad)); got != StatusRejected {
		t.Fatalf("flipped bit: %v", got)
	}
	if got := status(as.Deliver(ctx, []byte{9})); got != StatusMalformed {
		t.Fatalf("garbage: %v", got)
	}
	// Alice has no inbox here, and Carol's key is unknown.
	if _, err := as.Fetch(ctx, 0, 0); status(err) != StatusNotHosted {
		t.Fatal("fetch of another's inbox")
	}
	if _, err := as.Key(ctx, carol.id); status(err) != StatusNotAvailable {
		t.Fatal("key of an unknown node")
	}
	if _, err := as.Key(ctx, bob.id); err != nil {
		t.Fatal(err)
	}
}

// TestWatch: a watcher gets entries already there, then new ones.
func TestWatch(t *testing.T) {
	alice, bob := newParty(t), newParty(t)
	n, _ := serveMsg(t, bob, filepath.Join(t.TempDir(), "inbox.db"), []core.PeerEntry{grant(alice, SendScope)}, nil)
	as := session(t, alice, n.Addr, core.NetworkAuto)
	bs := session(t, bob, n.Addr, core.NetworkQUIC)
	ctx, cancel := context.WithCancel(ctxT(t))
	if _, err := as.Send(ctx, alice.node, Message{To: bob.id, Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	var werr error
	go func() {
		defer wg.Done()
		werr = bs.Watch(ctx, 0, func(e Entry) error {
			m, err := bob.opener().Open(e.Data, e.Received)
			if err != nil {
				return err
			}
			got <- string(m.Body)
			return nil
		})
	}()
	if b := <-got; b != "first" {
		t.Fatalf("got %q", b)
	}
	if _, err := as.Send(ctx, alice.node, Message{To: bob.id, Body: []byte("second")}); err != nil {
		t.Fatal(err)
	}
	if b := <-got; b != "second" {
		t.Fatalf("got %q", b)
	}
	cancel()
	wg.Wait()
	if !errors.Is(werr, context.Canceled) {
		t.Fatalf("watch ended with %v", werr)
	}
}
