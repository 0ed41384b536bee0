package fs

import (
	"context"
	"testing"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

func TestOps(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	root, err := s.Add(ctx, writeTree(t, map[string][]byte{"a": []byte("abc")}), AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := call.NewRegistry()
	if err := RegisterOps(reg, s); err != nil {
		t.Fatal(err)
	}
	reader, admin := coretest.NewKey(t), coretest.NewKey(t)
	dir, err := core.NewDirectory([]core.PeerEntry{
		{ID: "reader", NodeIDs: []core.NodeID{coretest.NodeID(reader)}, Scopes: []string{ScopeRead}},
		{ID: "admin", NodeIDs: []core.NodeID{coretest.NodeID(admin)}, Scopes: []string{"admin", ScopeRead, ScopeWrite}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	live := core.NewLiveDirectory(dir, nil)
	h, err := call.New(call.Config{Registry: reg, Identities: live})
	if err != nil {
		t.Fatal(err)
	}
	node := coretest.Start(t, core.Config{Identities: live}, h)
	client := func(key []byte) *call.Client {
		c, err := call.NewClient(ctx, node.Dial(t, core.NetworkQUIC, key, call.ALPN), call.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	rc, ac := client(reader), client(admin)

	var st Stat
	if err := rc.Call(ctx, "fs/stat", PathInput{CID: root.String(), Path: "a"}, &st); err != nil || st.Size != 3 {
		t.Errorf("fs/stat = %+v, %v", st, err)
	}
	var es []Entry
	if err := rc.Call(ctx, "fs/ls", PathInput{CID: root.String()}, &es); err != nil || len(es) != 1 {
		t.Errorf("fs/ls = %+v, %v", es, err)
	}
	if err := rc.Call(ctx, "fs/ls", PathInput{CID: root.String(), Path: "nope"}, &es); !call.IsCode(err, CodeNotFoundOp) {
		t.Errorf("fs/ls of a missing path: %v", err)
	}
	if err := rc.Call(ctx, "fs/pin", PinInput{Name: "p", CID: root.String()}, nil); !call.IsCode(err, call.CodeForbidden) {
		t.Errorf("fs/pin without fs:write: %v", err)
	}
	if err := ac.Call(ctx, "fs/pin", PinInput{Name: "p", CID: root.String()}, nil); err != nil {
		t.Fatal(err)
	}
	var pins []Pin
	if err := rc.Call(ctx, "fs/pins", struct{}{}, &pins); err != nil || len(pins) != 1 {
		t.Errorf("fs/pins = %v, %v", pins, err)
	}
	if err := rc.Call(ctx, "fs/gc", struct{}{}, nil); !call.IsCode(err, call.CodeForbidden) {
		t.Errorf("fs/gc without admin: %v", err)
	}
	var res GCResult
	if err := ac.Call(ctx, "fs/gc", struct{}{}, &res); err != nil || res.Removed != 0 || res.Kept != 2 {
		t.Errorf("fs/gc = %+v, %v", res, err)
	}
	if err := ac.Call(ctx, "fs/unpin", PinInput{Name: "p"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := ac.Call(ctx, "fs/gc", struct{}{}, &res); err != nil || res.Removed != 2 {
		t.Errorf("fs/gc after unpin = %+v, %v", res, err)
	}
}
