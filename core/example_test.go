package core_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/alkdev/alknet/core"
)

// upper serves the "example/upper" ALPN: it answers each stream with what
// it read, in upper case.
type upper struct{}

func (upper) ALPNs() []string { return []string{"example/upper"} }

func (upper) Serve(ctx context.Context, conn core.Conn) error {
	for {
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			return nil // the connection or the endpoint ended
		}
		b, err := io.ReadAll(s)
		if err != nil {
			s.Abort(core.CodeInternal)
			continue
		}
		_, _ = s.Write([]byte(strings.ToUpper(string(b))))
		_ = s.Close()
	}
}

// An endpoint serving one handler on loopback, and a client dialing it with
// the node's ID pinned in the address.
func ExampleEndpoint() {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		log.Fatal(err)
	}
	router, err := core.NewRouter(upper{})
	if err != nil {
		log.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	ep, err := core.New(core.Config{Addr: "127.0.0.1:0", Key: key, Router: router, Logger: quiet})
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
	d := &core.Dialer{Logger: quiet} // no Key: an anonymous client
	conn, err := d.Dial(ctx, ep.NodeID().String()+"@"+ep.Addr().String(), "example/upper")
	if err != nil {
		log.Fatal(err)
	}
	s, err := conn.OpenStream(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.Write([]byte("hello")); err != nil {
		log.Fatal(err)
	}
	_ = s.CloseWrite()
	reply, err := io.ReadAll(s)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply), conn.ALPN(), conn.Peer().NodeID == ep.NodeID())
	_ = conn.CloseWithError(core.CodeNoError, "")

	if err := ep.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(errors.Is(<-served, core.ErrEndpointClosed))
	// Output:
	// HELLO example/upper true
	// true
}

// A router advertises exactly the ALPNs of its handlers, in order, and
// refuses two handlers claiming the same one.
func ExampleNewRouter() {
	r, err := core.NewRouter(upper{})
	if err != nil {
		log.Fatal(err)
	}
	h, ok := r.Handler("example/upper")
	fmt.Println(r.ALPNs(), h == upper{}, ok)

	_, err = core.NewRouter(upper{}, upper{})
	fmt.Println(errors.Is(err, core.ErrDuplicateALPN))
	// Output:
	// [example/upper] true true
	// true
}
