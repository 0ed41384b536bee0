package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core"
)

var tokenCommand = &cli.Command{
	Name:  "token",
	Usage: "manage API tokens",
	Subcommands: []*cli.Command{{
		Name:  "create",
		Usage: "make an API token: print it once, store only its hash in the config",
		Flags: withCommon(
			&cli.StringFlag{Name: "name", Required: true, Usage: "the token identity's ID"},
			&cli.StringSliceFlag{Name: "scope", Usage: "scope to grant (repeat for more)"},
			&cli.DurationFlag{Name: "expires", Usage: "lifetime, e.g. 720h (default: never expires)"},
		),
		Action: func(c *cli.Context) error {
			dir, err := dataDir(c)
			if err != nil {
				return err
			}
			token, hash, err := core.NewToken()
			if err != nil {
				return err
			}
			t := config.Token{Name: c.String("name"), Hash: hash, Scopes: c.StringSlice("scope")}
			if d := c.Duration("expires"); d > 0 {
				t.Expires = time.Now().Add(d).UTC().Truncate(time.Second)
			} else if d < 0 {
				return fmt.Errorf("--expires %v: must be positive", d)
			}
			path := configPath(c, dir)
			if err := config.AppendToken(path, t); err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "stored token %q in %s; it is shown only this once:\n", t.Name, path)
			fmt.Fprintln(c.App.Writer, token)
			return applyBeside(c)
		},
	}},
}

var peersCommand = &cli.Command{
	Name:  "peers",
	Usage: "manage the peers the node knows",
	Subcommands: []*cli.Command{{
		Name:      "add",
		Usage:     "add a peer by NodeID or OpenSSH public key line",
		ArgsUsage: "ID KEY",
		Flags: withCommon(
			&cli.StringSliceFlag{Name: "scope", Usage: "scope to grant (repeat for more)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return fmt.Errorf("want two arguments, ID and KEY (a NodeID or a quoted OpenSSH key line)")
			}
			key, err := config.ParseKey(c.Args().Get(1))
			if err != nil {
				return err
			}
			dir, err := dataDir(c)
			if err != nil {
				return err
			}
			path := configPath(c, dir)
			p := config.Peer{ID: c.Args().Get(0), Keys: []config.Key{key}, Scopes: c.StringSlice("scope")}
			if err := config.AppendPeer(path, p); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "added peer %q to %s\n", p.ID, path)
			return applyBeside(c)
		},
	}},
}

var configCommand = &cli.Command{
	Name:  "config",
	Usage: "check the config file",
	Subcommands: []*cli.Command{{
		Name:      "check",
		Usage:     "validate a config file (default: the data dir's) and report every problem",
		ArgsUsage: "[FILE]",
		Flags:     withCommon(),
		Action: func(c *cli.Context) error {
			path := c.Args().First()
			if path == "" {
				dir, err := dataDir(c)
				if err != nil {
					return err
				}
				path = configPath(c, dir)
			}
			var f node.Config
			if err := config.Load(path, &f); err != nil {
				return err
			}
			if err := node.CheckServices(f.Services.Disable); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			fmt.Fprintf(c.App.Writer, "%s: ok (%d peers, %d tokens)\n", path, len(f.Peers), len(f.Tokens))
			return nil
		},
	}},
}
