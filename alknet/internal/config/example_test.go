package config_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/core"
)

func ExampleDecode() {
	doc := `
[limits]
idle_timeout = "1m"
max_conns = "many"
`
	var c config.Core
	err := config.Decode("alknet.toml", []byte(doc), &c)
	fmt.Println(err)
	// Output:
	// alknet.toml:4:13: limits.max_conns: cannot decode TOML string into struct field config.Limits.MaxConns of type int
}

func ExampleAppendToken() {
	dir, err := os.MkdirTemp("", "alknet")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "alknet.toml")

	token, hash, err := core.NewToken()
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := config.AppendToken(path, config.Token{Name: "ci", Hash: hash, Scopes: []string{"perf"}}, nil); err != nil {
		fmt.Println(err)
		return
	}
	var c config.Core
	if err := config.Load(path, &c); err != nil {
		fmt.Println(err)
		return
	}
	d, err := c.Directory()
	if err != nil {
		fmt.Println(err)
		return
	}
	id, ok := core.NewLiveDirectory(d, nil).ByToken(token)
	fmt.Println(id.ID, ok)
	// Output: ci true
}

// ExampleReloader shows the CLI's reload loop: load, validate, build a
// snapshot, swap it in; a failed reload keeps the old directory.
func ExampleReloader() {
	path := "/etc/alknet/alknet.toml"
	live := core.NewLiveDirectory(nil, nil)
	r := &config.Reloader{
		Path: path,
		Reload: func(ctx context.Context) error {
			var c config.Core
			if err := config.Load(path, &c); err != nil {
				return err
			}
			d, err := c.Directory()
			if err != nil {
				return err
			}
			live.Store(d)
			return nil
		},
		Logger: slog.Default(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	// ... serve with live as the endpoint's identity provider, until shutdown ...

	cancel()
	if err := <-done; err != nil {
		slog.Error("config watch failed", "err", err)
	}
}
