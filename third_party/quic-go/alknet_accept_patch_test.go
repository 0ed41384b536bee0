package quic

import (
	"context"
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/internal/protocol"
)

// TestAcceptQueueWaits is alknet's patch 12: connections whose handshakes
// complete while the application is not accepting wait for Accept, more
// of them than the accept queue holds, instead of being closed with
// CONNECTION_REFUSED after the client took them as established.
func TestAcceptQueueWaits(t *testing.T) {
	serverTLS := &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"alknet-test"}}
	ln, err := ListenAddr("127.0.0.1:0", serverTLS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n := protocol.MaxAcceptQueueSize + 8
	clients := make([]*Conn, n)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"alknet-test"}}, nil)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			clients[i] = c
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.CloseWithError(0, "")
			}
		}
	}()
	// Every handshake completed; none was accepted yet.
	for i := range n {
		if _, err := ln.Accept(ctx); err != nil {
			t.Fatalf("accepted %d of %d connections: %v", i, n, err)
		}
	}
	for i, c := range clients {
		if c != nil && c.Context().Err() != nil {
			t.Errorf("client %d's connection was closed: %v", i, context.Cause(c.Context()))
		}
	}
}
