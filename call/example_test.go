package call_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// greetIn and greetOut are the input and output of "example/greet".
type greetIn struct {
	Name string `json:"name"`
}

type greetOut struct {
	Greeting string `json:"greeting"`
}

// A node serving a query and a subscription to a peer holding the
// "example" scope, and that peer calling both over one connection.
func Example() {
	reg := call.NewRegistry()
	access := core.AccessControl{AllScopes: []string{"example"}}
	err := call.Register(reg, call.Spec{Name: "example/greet", Access: access},
		func(ctx context.Context, req *call.Request, in greetIn) (greetOut, error) {
			return greetOut{Greeting: "hello, " + in.Name}, nil
		})
	if err != nil {
		log.Fatal(err)
	}
	err = call.RegisterStream(reg, call.Spec{Name: "example/count", Access: access},
		func(ctx context.Context, req *call.Request, n int, send func(int) error) error {
			for i := 1; i <= n; i++ {
				if err := send(i); err != nil {
					return err
				}
			}
			return nil // completes the subscription
		})
	if err != nil {
		log.Fatal(err)
	}

	// The node: an endpoint that knows the client's key as the peer
	// "laptop" with the "example" scope, serving the call handler.
	_, nodeKey, _ := ed25519.GenerateKey(nil)
	_, clientKey, _ := ed25519.GenerateKey(nil)
	clientID, _ := core.NodeIDFromPublicKey(clientKey.Public().(ed25519.PublicKey))
	dir, err := core.NewDirectory([]core.PeerEntry{{ID: "laptop", NodeIDs: []core.NodeID{clientID}, Scopes: []string{"example"}}}, nil)
	if err != nil {
		log.Fatal(err)
	}
	ids := core.NewLiveDirectory(dir, nil)
	quiet := slog.New(slog.DiscardHandler)
	h, err := call.New(call.Config{Registry: reg, Identities: ids, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	router, err := core.NewRouter(h)
	if err != nil {
		log.Fatal(err)
	}
	ep, err := core.New(core.Config{Addr: "127.0.0.1:0", Key: nodeKey, Router: router, Identities: ids, Logger: quiet})
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

	// The client.
	c, err := call.Dial(ctx, ep.NodeID().String()+"@"+ep.Addr().String(),
		call.Options{Dialer: &core.Dialer{Key: clientKey, Logger: quiet}, Logger: quiet})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var out greetOut
	if err := c.Call(ctx, "example/greet", greetIn{Name: "alknet"}, &out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out.Greeting)
	var got []string
	for v, err := range c.Subscribe(ctx, "example/count", 3) {
		if err != nil {
			log.Fatal(err)
		}
		got = append(got, string(v))
	}
	fmt.Println(strings.Join(got, " "))
	err = c.Call(ctx, "example/missing", nil, nil)
	fmt.Println(call.IsCode(err, call.CodeNotFound))
	// Output:
	// hello, alknet
	// 1 2 3
	// true
}
