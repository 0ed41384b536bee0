package fs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	car "github.com/ipld/go-car/v2"
	"github.com/multiformats/go-varint"
	"github.com/quic-go/quic-go"

	"github.com/alkdev/alknet/core"
)

// failingWrites is a blockstore whose writes fail with err, as a full or
// broken disk does; reads go through.
type failingWrites struct {
	blockstore.Blockstore
	err error
}

func (f failingWrites) Put(context.Context, blocks.Block) error { return f.err }

func (f failingWrites) PutMany(context.Context, []blocks.Block) error { return f.err }

// TestPutFailureCodes: a put that fails because of the node (its store
// cannot write) reaches the client as internal or unavailable, never as the
// client's bad_request, which stays for what the client got wrong.
func TestPutFailureCodes(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		storeErr error                                              // the server store's write error; nil: none
		body     func(t *testing.T, local *Store) (cid.Cid, []byte) // nil: a correct CAR through Client.Put
		want     string
	}{
		{name: "store write fails", storeErr: errors.New("input/output error"), want: CodeInternal},
		{name: "store full", storeErr: fmt.Errorf("write: %w", syscall.ENOSPC), want: CodeUnavailable},
		{name: "garbage body", want: CodeBadRequest, body: func(t *testing.T, local *Store) (cid.Cid, []byte) {
			return addFile(t, local, []byte("x")), []byte("not a CAR at all")
		}},
		{name: "CAR of another root", want: CodeBadRequest, body: func(t *testing.T, local *Store) (cid.Cid, []byte) {
			other := addFile(t, local, []byte("other"))
			var car bytes.Buffer
			if _, err := local.ExportCAR(ctx, other, Selection{}, &car); err != nil {
				t.Fatal(err)
			}
			return addFile(t, local, []byte("asked")), car.Bytes()
		}},
		{name: "CAR cut short", want: CodeBadRequest, body: func(t *testing.T, local *Store) (cid.Cid, []byte) {
			root := addFile(t, local, pattern("cut", 3*ChunkSize))
			var car bytes.Buffer
			if _, err := local.ExportCAR(ctx, root, Selection{}, &car); err != nil {
				t.Fatal(err)
			}
			return root, car.Bytes()[:car.Len()-10]
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sv := startServer(t, false)
			if tc.storeErr != nil {
				sv.store.blocks = failingWrites{Blockstore: sv.store.blocks, err: tc.storeErr}
				sv.store.writeBlocks = func([]blocks.Block) error { return tc.storeErr }
			}
			cl, local := sv.client(t, sv.writer)
			var err error
			if tc.body == nil {
				root := addFile(t, local, pattern(tc.name, 2*ChunkSize))
				_, err = cl.Put(ctx, root, "p")
			} else {
				root, body := tc.body(t, local)
				_, _, err = cl.roundTrip(ctx, Request{Op: OpPut, Root: root.String()}, func(st core.Stream) error {
					_, err := io.Copy(st, bytes.NewReader(body))
					return err
				})
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tc.want {
				t.Fatalf("put: %v, want remote %s", err, tc.want)
			}
			if tc.storeErr != nil && bytes.Contains([]byte(re.Message), []byte(tc.storeErr.Error())) {
				t.Errorf("the node's own error reached the client: %q", re.Message)
			}
		})
	}
}

// TestPutBounds pushes CAR streams that a writer could use to make the
// node hold memory or a stream for ever, and checks that each is refused:
// a section that stops arriving is cut after the frame grace, a section
// larger than the connection's in-flight budget resets the stream with
// code busy, and a CAR v2 (which go-car would read into a buffer of its
// declared length) is not the protocol's.
func TestPutBounds(t *testing.T) {
	src := openStore(t)
	root := addFile(t, src, pattern("bounds", 3*ChunkSize))
	good, _ := exportBytes(t, src, root)
	hdrLen, m, err := varint.FromUvarint(good)
	if err != nil {
		t.Fatal(err)
	}
	header := good[:m+int(hdrLen)]
	// A section declaring the largest block, of which part is sent.
	section := func(sent int) []byte {
		return append(append(bytes.Clone(header), varint.ToUvarint(MaxBlockBytes)...), make([]byte, sent)...)
	}
	var v2 bytes.Buffer
	if err := car.WrapV1(bytes.NewReader(good), &v2); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		limits core.Limits
		body   []byte
		// want is the remote error code; empty: the stream is reset with
		// code busy.
		want    string
		message string
	}{
		{name: "section stalls", limits: core.Limits{FrameGrace: 300 * time.Millisecond, FrameMinRate: 1 << 20},
			body: section(100 << 10), want: CodeBadRequest, message: "too slowly"},
		{name: "header stalls", limits: core.Limits{FrameGrace: 300 * time.Millisecond, FrameMinRate: 1 << 20},
			body: header[:len(header)/2], want: CodeBadRequest, message: "too slowly"},
		{name: "section over the budget", limits: core.Limits{MaxConnInflightBytes: 256 << 10},
			body: section(1 << 20)},
		{name: "CAR v2", body: v2.Bytes(), want: CodeBadRequest, message: "CAR v2 on a stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sv := startServerWith(t, false, tc.limits)
			st := sv.request(t, sv.writer, Request{Op: OpPut, Root: root.String()})
			// Written beside the read: a refused stream stops taking
			// bytes. The stream is not closed: the node must not wait
			// for its end.
			go func() { _, _ = st.Write(tc.body) }()
			_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err := readResponse(st)
			if tc.want == "" {
				var se *quic.StreamError
				if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(core.CodeBusy) {
					t.Fatalf("put over the budget: %v (answer %+v), want the stream reset with code busy", err, resp)
				}
				return
			}
			var re *RemoteError
			if !errors.As(err, &re) || re.Code != tc.want || !strings.Contains(re.Message, tc.message) {
				t.Fatalf("put: %v, want remote %s with %q", err, tc.want, tc.message)
			}
		})
	}
}

// TestGetStalledReader: a peer that asks for a DAG and stops reading it is
// not served for ever: the node must see each section taken at the frame
// rate after the grace, and resets the stream when it is not.
func TestGetStalledReader(t *testing.T) {
	sv := startServerWith(t, true, core.Limits{FrameGrace: 300 * time.Millisecond, FrameMinRate: 1 << 20})
	root := addFile(t, sv.store, pattern("stalled reader", 64*ChunkSize))
	st := sv.request(t, nil, Request{Op: OpGet, Root: root.String()})
	if _, err := readResponse(st); err != nil {
		t.Fatal(err)
	}
	// 16 MiB do not fit the windows: the node's writes stall while this
	// side reads nothing, and must fail within the grace and the rate.
	time.Sleep(2 * time.Second)
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, st)
	var se *quic.StreamError
	if !errors.As(err, &se) || se.ErrorCode != quic.StreamErrorCode(codeFailed) {
		t.Fatalf("read %d bytes of a stalled get, then %v; want the stream reset with %v", n, err, codeFailed)
	}
}

// request opens a stream to the server as key (nil: anonymous) and writes
// req on it; the stream is aborted when the test ends.
func (sv *server) request(t *testing.T, key ed25519.PrivateKey, req Request) core.Stream {
	t.Helper()
	conn := sv.node.Dial(t, core.NetworkQUIC, key, ALPN)
	st, err := conn.OpenStream(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Abort(codeFailed) })
	if err := writeFrame(st, req); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestGetSlots: the gets being sent at once are bounded (MaxGets), an
// anonymous peer's to an eighth of them, so peers that ask for DAGs and
// do not read them cannot make the node hold a section for each; a get
// past the bound is answered unavailable, and a slot comes back when its
// get ends.
func TestGetSlots(t *testing.T) {
	sv := startServerConfig(t, Config{Public: true, MaxGets: 8}, core.Limits{})
	root := addFile(t, sv.store, pattern("slots", 64*ChunkSize))
	get := func(key ed25519.PrivateKey) (core.Stream, error) {
		st := sv.request(t, key, Request{Op: OpGet, Root: root.String()})
		_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := readResponse(st)
		return st, err
	}
	unavailable := func(err error) bool {
		var re *RemoteError
		return errors.As(err, &re) && re.Code == CodeUnavailable
	}
	// 16 MiB do not fit the windows: an unread get stays being sent.
	anon, err := get(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := get(nil); !unavailable(err) {
		t.Fatalf("a second anonymous get past its one slot: %v, want unavailable", err)
	}
	for i := range 7 {
		if _, err := get(sv.reader); err != nil {
			t.Fatalf("known get %d of 7: %v", i+1, err)
		}
	}
	if _, err := get(sv.reader); !unavailable(err) {
		t.Fatalf("a ninth get: %v, want unavailable", err)
	}
	anon.Abort(codeFailed)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := get(nil)
		if err == nil {
			break
		}
		if !unavailable(err) || time.Now().After(deadline) {
			t.Fatalf("an anonymous get after the first ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNewRefusesBadMaxGets: a MaxGets out of range is a clear error, not
// a count that wraps.
func TestNewRefusesBadMaxGets(t *testing.T) {
	s := openStore(t)
	for _, n := range []int{-1, maxMaxGets + 1, 1 << 40} {
		if _, err := New(Config{Store: s, MaxGets: n}); err == nil || !strings.Contains(err.Error(), "MaxGets") {
			t.Errorf("MaxGets %d: %v, want an error naming MaxGets", n, err)
		}
	}
	if _, err := New(Config{Store: s, MaxGets: maxMaxGets}); err != nil {
		t.Errorf("MaxGets %d: %v", maxMaxGets, err)
	}
}
