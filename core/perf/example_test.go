package perf_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"log/slog"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/perf"
)

// A perf run over QUIC on loopback: the client's key is a peer holding the
// perf scope; each of two streams uploads 64 KiB and asks for 256 KiB back.
func ExampleRun() {
	_, nodeKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	_, clientKey, err := ed25519.GenerateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	clientID, err := core.NodeIDFromPublicKey(clientKey.Public().(ed25519.PublicKey))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := core.NewDirectory([]core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{clientID}, Scopes: []string{perf.Scope}}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	router, err := core.NewRouter(perf.New(perf.Config{Logger: quiet}))
	if err != nil {
		log.Fatal(err)
	}
	ep, err := core.New(core.Config{Addr: "127.0.0.1:0", Key: nodeKey, Router: router, Identities: core.NewLiveDirectory(dir, nil), Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	if err := ep.Listen(); err != nil {
		log.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ep.Serve(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer func() { _ = ep.Shutdown(ctx); <-served }()

	d := &core.Dialer{Key: clientKey, Network: core.NetworkQUIC, Logger: quiet}
	conn, err := d.Dial(ctx, ep.NodeID().String()+"@"+ep.Addr().String(), perf.ALPN)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.CloseWithError(core.CodeNoError, "")
	r, err := perf.Run(ctx, conn.OpenStream, perf.Options{Upload: 64 << 10, Download: 256 << 10, Streams: 2})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Uploaded, r.Downloaded, r.UploadMbps() > 0, r.DownloadMbps() > 0)
	// Output: 131072 524288 true true
}
