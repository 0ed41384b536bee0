package ssh_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/ssh"
	"github.com/alkdev/alknet/ssh/socks5"
)

// A client on a node's alknet/ssh: run a command, dial through the node,
// and forward a local port, redialling when the connection drops.
func ExampleDial() {
	var nodeKey ed25519.PrivateKey // this node's key, from its vault
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	client, err := ssh.Dial(ctx, ssh.ClientConfig{
		Dialer:    &core.Dialer{Key: nodeKey, KnownNodes: core.NewKnownNodes("known_nodes")},
		Addr:      "NODEID@node.example.org:4433",
		Reconnect: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// One command (needs ssh:shell on the node).
	sess, err := client.Session(ctx)
	if err != nil {
		log.Fatal(err)
	}
	out, err := sess.Output("uname -a")
	sess.Close()
	fmt.Printf("%s %v\n", out, err)

	// A connection the node makes (needs ssh:forward and a rule); errors
	// match os.ErrPermission, syscall.ECONNREFUSED and so on.
	conn, err := client.DialContext(ctx, "tcp", "db.internal:5432")
	if err == nil {
		conn.Close()
	}

	// ssh -L 127.0.0.1:5432:db.internal:5432, until Ctrl-C.
	ln, err := net.Listen("tcp", "127.0.0.1:5432")
	if err != nil {
		log.Fatal(err)
	}
	_ = ssh.Forward(ctx, ln, client.DialContext, "tcp", "db.internal:5432", nil)
}

// ssh -R: the node listens on its loopback port 8080 and each connection
// comes here, to localhost:3000; the listener survives reconnects.
func ExampleClient_Listen() {
	var client *ssh.Client // from ssh.Dial with Reconnect
	ctx := context.Background()
	ln, err := client.Listen("tcp", "localhost:8080")
	if err != nil {
		log.Fatal(err)
	}
	var d net.Dialer
	_ = ssh.Forward(ctx, ln, d.DialContext, "tcp", "localhost:3000", nil)
}

// A SOCKS5 proxy whose connections the node makes: names are resolved by
// the node, and its forwarding rules decide.
func ExampleClient_DialContext_socks() {
	var client *ssh.Client // from ssh.Dial with Reconnect
	srv, err := socks5.New(socks5.Config{Dial: client.DialContext})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:1080")
	if err != nil {
		log.Fatal(err)
	}
	_ = srv.Serve(context.Background(), ln)
}
