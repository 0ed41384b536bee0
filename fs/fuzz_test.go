package fs

import (
	"bytes"
	"context"
	"testing"

	"github.com/ipfs/go-cid"

	"github.com/alkdev/alknet/core"
)

func FuzzDecodeRequest(f *testing.F) {
	const c = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
	for _, seed := range []string{
		`{"op":"get","root":"` + c + `"}`,                                              // whole DAG
		`{"op":"get","root":"` + c + `","path":"a/b","range":{"offset":5,"length":3}}`, // path and range
		`{"op":"get","root":"` + c + `","have":["` + c + `"]}`,                         // resume
		`{"op":"has","cids":["` + c + `","` + c + `"]}`,                                // has
		`{"op":"has","cids":[]}`,                                                       // empty has: rejected
		`{"op":"put","root":"` + c + `","pin":"backup"}`,                               // put with pin
		`{"op":"put","pin":"bad name"}`,                                                // bad pin
		`{"op":"stat","root":"not-a-cid"}`,                                             // bad cid
		`{"op":"delete"}`,                                                              // unknown op
		`{"op":"get","root":"` + c + `","range":{"offset":-1}}`,                        // negative offset
		"\xff\xfe", // not UTF-8
		`[]`,       // not an object
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRequest(body)
		if err != nil {
			return
		}
		switch r.Op {
		case OpGet, OpPut, OpHas, OpStat:
		default:
			t.Fatalf("accepted op %q", r.Op)
		}
	})
}

// FuzzImportCAR feeds arbitrary bytes to the CAR reader entry point; it
// must fail cleanly or import a DAG that is then complete. The same bytes
// as a peer's put stream (CAR v1 only, under a budget) must end without
// a panic and leave nothing charged to the budget.
func FuzzImportCAR(f *testing.F) {
	s := openStore(f)
	root := addFile(f, s, pattern("fuzz", 2*ChunkSize+10))
	valid, _ := exportBytes(f, s, root)
	small := addFile(f, s, []byte("small"))
	smallCAR, _ := exportBytes(f, s, small)
	f.Add(smallCAR)                   // valid, one block
	f.Add(valid[:200])                // header and part of the root
	f.Add(smallCAR[:len(smallCAR)-1]) // truncated last byte
	f.Add([]byte{0x0a, 0xa1})         // header length, no header
	f.Add([]byte{})                   // empty
	dst := openStore(f)
	peer := openStore(f)
	const budget = 4 << 20
	f.Fuzz(func(t *testing.T, data []byte) {
		b := core.NewBudget(budget, nil)
		r := bytes.NewReader(data)
		_, _, _ = peer.receiveCAR(context.Background(), r, cid.Undef, nil, newPeerLimits(r, core.FrameLimits{Budget: b}))
		if !b.TryAcquire(budget) {
			t.Fatal("a peer's CAR left bytes charged to its budget")
		}
		roots, _, err := dst.ImportCAR(context.Background(), bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, r := range roots {
			if _, err := dst.Stat(context.Background(), r); err != nil {
				// Only UnixFS decoding may fail on a complete DAG.
				if _, werr := dst.walk(context.Background(), r, nil); werr != nil {
					t.Fatalf("import succeeded but %s is incomplete: %v", r, werr)
				}
			}
		}
	})
}
