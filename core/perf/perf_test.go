package perf_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
	"github.com/alkdev/alknet/core/perf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs perf on a loopback node that grants key the perf scope.
func start(t *testing.T, cfg perf.Config) (*coretest.Node, []byte) {
	key := coretest.NewKey(t)
	dir, err := core.NewDirectory([]core.PeerEntry{{ID: "client", NodeIDs: []core.NodeID{coretest.NodeID(key)}, Scopes: []string{perf.Scope}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := coretest.Start(t, core.Config{Identities: core.NewLiveDirectory(dir, nil)}, perf.New(cfg))
	return n, key
}

func TestRun(t *testing.T) {
	n, key := start(t, perf.Config{})
	for _, network := range []core.Network{core.NetworkQUIC, core.NetworkTCP} {
		t.Run(string(network), func(t *testing.T) {
			c := n.Dial(t, network, key, perf.ALPN)
			streams := 4
			if network == core.NetworkTCP {
				streams = 1
			}
			r, err := perf.Run(context.Background(), c.OpenStream, perf.Options{Upload: 1 << 20, Download: 3 << 20, Streams: streams})
			if err != nil {
				t.Fatal(err)
			}
			if r.Uploaded != int64(streams)<<20 || r.Downloaded != int64(streams)*3<<20 {
				t.Errorf("moved %d up, %d down", r.Uploaded, r.Downloaded)
			}
			if r.UploadMbps() <= 0 || r.DownloadMbps() <= 0 {
				t.Errorf("throughput %v / %v", r.UploadMbps(), r.DownloadMbps())
			}
		})
	}
}

func TestNeedsScope(t *testing.T) {
	n, _ := start(t, perf.Config{})
	for _, key := range [][]byte{nil, coretest.NewKey(t)} {
		c := n.Dial(t, core.NetworkQUIC, key, perf.ALPN)
		select {
		case <-c.Context().Done():
		case <-time.After(5 * time.Second):
			t.Fatal("connection without the perf scope stays open")
		}
		var ae *quic.ApplicationError
		if err := context.Cause(c.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(core.CodeForbidden) {
			t.Errorf("closed with %v, want %v", err, core.CodeForbidden)
		}
	}
}

func TestRefusesOversizedRequest(t *testing.T) {
	n, key := start(t, perf.Config{MaxBytes: 1000})
	c := n.Dial(t, core.NetworkQUIC, key, perf.ALPN)
	s, err := c.OpenStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], 1001)
	s.Write(hdr[:])
	s.CloseWrite()
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	// The server closes the stream without an answer.
	if got, _ := io.ReadAll(s); len(got) != 0 {
		t.Errorf("oversized request answered with %d bytes", len(got))
	}
}
