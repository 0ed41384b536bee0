package socks5_test

import (
	"context"
	"fmt"
	"net"

	"github.com/alkdev/alknet/ssh/socks5"
)

// A SOCKS5 server requiring a password, dialling directly (the alknet CLI
// passes (*ssh.Client).DialContext instead).
func ExampleNew() {
	var d net.Dialer
	srv, err := socks5.New(socks5.Config{Dial: d.DialContext, User: "me", Password: "s3cret"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a real program serves until it stops
	fmt.Println(srv.Serve(ctx, ln))

	_, err = socks5.New(socks5.Config{Dial: d.DialContext, User: "me"})
	fmt.Println(err)
	// Output:
	// context canceled
	// socks5: config: User and Password: set both or neither
}
