package sftp_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"os"

	pkgsftp "github.com/pkg/sftp"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/sftp"
)

// A node serves SFTP by adding the server to its router; every peer gets
// its own directory under Root.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "sftp-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	srv, err := sftp.New(sftp.Config{
		Root:  dir,                                                 // alice gets dir/alice
		Roots: map[string]string{"backup": dir + "/shared-backup"}, // an override
	})
	if err != nil {
		log.Fatal(err)
	}
	router, err := core.NewRouter(srv)
	if err != nil {
		log.Fatal(err)
	}
	_ = router // core.Config{Router: router, ...}
	fmt.Println(srv.ALPNs())
	// Output: [alknet/sftp]
}

// ServeStream serves one session on any stream: here an in-memory pipe,
// in the node the ssh module's "sftp" subsystem channel.
func ExampleServer_ServeStream() {
	dir, err := os.MkdirTemp("", "sftp-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	srv, err := sftp.New(sftp.Config{Root: dir, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}

	serverSide, clientSide := net.Pipe()
	id := &core.Identity{ID: "alice", Scopes: []string{sftp.ScopeRead, sftp.ScopeWrite}}
	done := make(chan error, 1)
	go func() { done <- srv.ServeStream(context.Background(), serverSide, id) }()

	client, err := pkgsftp.NewClientPipe(clientSide, clientSide)
	if err != nil {
		log.Fatal(err)
	}
	f, err := client.Create("/hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprint(f, "hello from alice")
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	client.Close() // ends the session
	if err := <-done; err != nil {
		log.Fatal(err)
	}

	onDisk, err := os.Open(dir + "/alice/hello.txt")
	if err != nil {
		log.Fatal(err)
	}
	defer onDisk.Close()
	b, _ := io.ReadAll(onDisk)
	fmt.Println(string(b))
	// Output: hello from alice
}
