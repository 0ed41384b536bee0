package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/ssh"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/core"
)

// jsonFlag asks a list command for JSON instead of a table.
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON instead of a table"}

// removeAction is the action of `token revoke` and `peers rm`: remove
// names the entry to remove (one argument), done says what was done
// (with the entry's name and the file's path), and a running node beside
// the file applies it at once.
func removeAction(what, done string, remove func(path, name string, check config.Check) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() != 1 {
			return fmt.Errorf("want one argument, %s", what)
		}
		path, err := adminConfig(c)
		if err != nil {
			return err
		}
		name := c.Args().First()
		if err := remove(path, name, checkConfig); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, done+"%s\n", name, path, liveNote)
		return applyBeside(c)
	}
}

// liveNote ends the message of an edit: a running node beside the file
// applies it by itself.
const liveNote = "; a node running on this file applies it at once"

// errNoChange is returned by an edit function that finds nothing to do.
var errNoChange = errors.New("no change")

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
			path, err := adminConfig(c)
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
			if err := config.AppendToken(path, t, checkConfig); err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "stored token %q in %s; it is shown only this once:\n", t.Name, path)
			fmt.Fprintln(c.App.Writer, token)
			return applyBeside(c)
		},
	}, {
		Name:  "list",
		Usage: "list the tokens of the config (names, scopes, expiry; never a token)",
		Flags: withCommon(jsonFlag),
		Action: func(c *cli.Context) error {
			cfg, err := adminLoad(c)
			if err != nil {
				return err
			}
			now := time.Now()
			type tokenJSON struct {
				Name    string     `json:"name"`
				Scopes  []string   `json:"scopes"`
				Expires *time.Time `json:"expires,omitempty"`
				Enabled bool       `json:"enabled"`
				Expired bool       `json:"expired"`
			}
			out := make([]tokenJSON, len(cfg.Tokens))
			for i, t := range cfg.Tokens {
				out[i] = tokenJSON{Name: t.Name, Scopes: nonNil(t.Scopes), Enabled: t.Enabled == nil || *t.Enabled}
				if !t.Expires.IsZero() {
					e := t.Expires
					out[i].Expires, out[i].Expired = &e, !now.Before(e)
				}
			}
			if c.Bool("json") {
				return printJSON(c, out)
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTATUS\tEXPIRES\tSCOPES")
			for _, t := range out {
				status, expires := "enabled", "never"
				if !t.Enabled {
					status = "disabled"
				}
				if t.Expires != nil {
					expires = t.Expires.Format(time.RFC3339)
					if t.Expired {
						status = "expired"
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", t.Name, status, expires, strings.Join(t.Scopes, ","))
			}
			return w.Flush()
		},
	}, {
		Name:      "revoke",
		Usage:     "remove a token from the config: it stops working at once",
		ArgsUsage: "NAME",
		Flags:     withCommon(),
		Action:    removeAction("the token's NAME (see alknet token list)", "revoked token %q in %s", config.RemoveToken),
	}},
}

var peersCommand = &cli.Command{
	Name:  "peers",
	Usage: "manage the peers the node knows",
	Description: "Each change edits the config file in place (its comments stay), is validated\n" +
		"before it is written, and is written atomically; a node running on that file\n" +
		"reloads it at once, so a revoked scope or a disabled peer is refused without a restart.",
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
			path, err := adminConfig(c)
			if err != nil {
				return err
			}
			p := config.Peer{ID: c.Args().Get(0), Keys: []config.Key{key}, Scopes: c.StringSlice("scope")}
			if cfg, err := node.LoadConfig(path); err == nil {
				for _, o := range cfg.Peers {
					switch {
					case o.ID == p.ID:
						return fmt.Errorf("peer %q is already in %s: change its scopes with `alknet peers grant %s SCOPE...` or `alknet peers revoke %s SCOPE...`",
							p.ID, path, o.ID, o.ID)
					case slices.ContainsFunc(o.Keys, func(k config.Key) bool { return sameKey(k, key) }):
						return fmt.Errorf("that key already belongs to peer %q in %s: to give it more scopes run `alknet peers grant %s SCOPE...`",
							o.ID, path, o.ID)
					}
				}
			}
			if err := config.AppendPeer(path, p, checkConfig); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "added peer %q to %s%s\n", p.ID, path, liveNote)
			return applyBeside(c)
		},
	}, {
		Name:  "list",
		Usage: "list the peers of the config",
		Flags: withCommon(jsonFlag),
		Action: func(c *cli.Context) error {
			cfg, err := adminLoad(c)
			if err != nil {
				return err
			}
			out := make([]peerJSON, len(cfg.Peers))
			for i, p := range cfg.Peers {
				out[i] = peerView(p)
			}
			if c.Bool("json") {
				return printJSON(c, out)
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTATUS\tSCOPES\tKEYS")
			for i, p := range out {
				short := make([]string, len(cfg.Peers[i].Keys))
				for j, k := range cfg.Peers[i].Keys {
					short[j] = shortKey(k)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", p.ID, status(p.Enabled), strings.Join(p.Scopes, ","), strings.Join(short, ","))
			}
			return w.Flush()
		},
	}, {
		Name:      "show",
		Usage:     "print one peer: status, scopes and every key in full",
		ArgsUsage: "ID",
		Flags:     withCommon(jsonFlag),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("want one argument, the peer's ID (see alknet peers list)")
			}
			path, err := adminConfig(c)
			if err != nil {
				return err
			}
			cfg, err := node.LoadConfig(path)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(cfg.Peers, func(p config.Peer) bool { return p.ID == c.Args().First() })
			if i < 0 {
				return fmt.Errorf("no peer %q in %s (see alknet peers list)", c.Args().First(), path)
			}
			p := peerView(cfg.Peers[i])
			if c.Bool("json") {
				return printJSON(c, p)
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "id\t%s\nstatus\t%s\nscopes\t%s\n", p.ID, status(p.Enabled), strings.Join(p.Scopes, ", "))
			for _, k := range p.Keys {
				fmt.Fprintf(w, "key\t%s\n", k)
			}
			return w.Flush()
		},
	},
		peerEdit("grant", "SCOPE...", "give a peer more scopes", func(p *config.Peer, scopes []string) (string, error) {
			added := 0
			for _, s := range scopes {
				if !slices.Contains(p.Scopes, s) {
					p.Scopes = append(p.Scopes, s)
					added++
				}
			}
			if added == 0 {
				return "", errNoChange
			}
			return "scopes now: " + strings.Join(p.Scopes, ", "), nil
		}),
		peerEdit("revoke", "SCOPE...", "take scopes from a peer", func(p *config.Peer, scopes []string) (string, error) {
			for _, s := range scopes {
				if !slices.Contains(p.Scopes, s) {
					return "", fmt.Errorf("peer %q does not hold scope %q (it holds: %s)", p.ID, s, strings.Join(p.Scopes, ", "))
				}
			}
			p.Scopes = slices.DeleteFunc(p.Scopes, func(s string) bool { return slices.Contains(scopes, s) })
			if len(p.Scopes) == 0 {
				return "it holds no scope now", nil
			}
			return "scopes now: " + strings.Join(p.Scopes, ", "), nil
		}),
		peerEdit("disable", "", "keep a peer but refuse it; its live connections close", func(p *config.Peer, _ []string) (string, error) {
			if p.Enabled != nil && !*p.Enabled {
				return "", errNoChange
			}
			off := false
			p.Enabled = &off
			return "disabled", nil
		}),
		peerEdit("enable", "", "accept a disabled peer again", func(p *config.Peer, _ []string) (string, error) {
			if p.Enabled == nil || *p.Enabled {
				return "", errNoChange
			}
			p.Enabled = nil
			return "enabled", nil
		}),
		{
			Name:      "rm",
			Usage:     "remove a peer from the config; its live connections close",
			ArgsUsage: "ID",
			Flags:     withCommon(),
			Action:    removeAction("the peer's ID (see alknet peers list)", "removed peer %q from %s", config.RemovePeer),
		}},
}

// peerEdit is a peers subcommand taking ID and, if args is set, one or
// more arguments, which edit changes the peer with; it returns what to say.
func peerEdit(name, args, usage string, edit func(p *config.Peer, args []string) (string, error)) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: strings.TrimSpace("ID " + args),
		Flags:     withCommon(),
		Action: func(c *cli.Context) error {
			if n := c.NArg(); (args == "" && n != 1) || (args != "" && n < 2) {
				return fmt.Errorf("want the peer's ID%s", map[bool]string{true: " and " + args}[args != ""])
			}
			path, err := adminConfig(c)
			if err != nil {
				return err
			}
			id := c.Args().First()
			var said string
			err = config.UpdatePeer(path, id, checkConfig, func(p *config.Peer) error {
				var err error
				said, err = edit(p, c.Args().Slice()[1:])
				return err
			})
			switch {
			case errors.Is(err, errNoChange):
				fmt.Fprintf(c.App.Writer, "peer %q in %s: nothing to change\n", id, path)
				return nil
			case errors.Is(err, config.ErrNotFound):
				return fmt.Errorf("no peer %q in %s (see alknet peers list)", id, path)
			case err != nil:
				return err
			}
			fmt.Fprintf(c.App.Writer, "peer %q in %s: %s%s\n", id, path, said, liveNote)
			return applyBeside(c)
		},
	}
}

// peerJSON is a peer as `peers list --json` and `peers show --json` print it.
type peerJSON struct {
	ID      string   `json:"id"`
	Enabled bool     `json:"enabled"`
	Scopes  []string `json:"scopes"`
	Keys    []string `json:"keys"`
}

func peerView(p config.Peer) peerJSON {
	v := peerJSON{ID: p.ID, Enabled: p.Enabled == nil || *p.Enabled, Scopes: nonNil(p.Scopes), Keys: []string{}}
	for _, k := range p.Keys {
		v.Keys = append(v.Keys, k.String())
	}
	return v
}

func status(enabled bool) string {
	if enabled {
		return "enabled"
	}
	return "disabled"
}

// shortKey is a key in a list: a NodeID's first characters, or an SSH key's
// type and SHA-256 fingerprint.
func shortKey(k config.Key) string {
	if id, ok := k.NodeID(); ok {
		return id.ShortString()
	}
	if pub, err := ssh.ParsePublicKey(k.SSHKey()); err == nil {
		return pub.Type() + ":" + ssh.FingerprintSHA256(pub)
	}
	return "?"
}

// sameKey reports whether a and b are the same identity.
func sameKey(a, b config.Key) bool {
	if ia, ok := a.NodeID(); ok {
		ib, ok := b.NodeID()
		return ok && ia == ib
	}
	return len(a.SSHKey()) > 0 && bytes.Equal(a.SSHKey(), b.SSHKey())
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// orEmpty is s, or an empty slice so that JSON prints [] and not null.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// withJSON adds --json to a command that prints a table.
func withJSON(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, jsonFlag)
	return cmd
}

func printJSON(c *cli.Context, v any) error {
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// adminConfig returns the config file the management commands edit.
func adminConfig(c *cli.Context) (string, error) {
	dir, err := dataDir(c)
	if err != nil {
		return "", err
	}
	return configPath(c, dir), nil
}

// adminLoad loads the config file for the list commands; a missing file is
// the empty config.
func adminLoad(c *cli.Context) (*node.Config, error) {
	path, err := adminConfig(c)
	if err != nil {
		return nil, err
	}
	return node.LoadConfig(path)
}

// checkConfig validates a whole config text as `alknet serve` loads it, so
// that an edit never writes a file the running node would refuse to reload.
func checkConfig(path string, data []byte) error {
	var f node.Config
	return config.Decode(path, data, &f)
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
				// One problem per line, all of them, in the file's order;
				// then the count.
				problems := strings.Split(err.Error(), "\n")
				slices.SortStableFunc(problems, func(a, b string) int {
					la, ca := problemPos(path, a)
					lb, cb := problemPos(path, b)
					return cmp.Or(cmp.Compare(la, lb), cmp.Compare(ca, cb))
				})
				for _, p := range problems {
					fmt.Fprintln(c.App.ErrWriter, p)
				}
				return cli.Exit(fmt.Sprintf("%s: %d problem%s", path, len(problems), map[bool]string{true: "s"}[len(problems) > 1]), 1)
			}
			fmt.Fprintf(c.App.Writer, "%s: ok (%d peers, %d tokens)\n", path, len(f.Peers), len(f.Tokens))
			return nil
		},
	}},
}

// problemPos is the line and column a problem of config check names
// ("PATH:LINE:COL: key: what"); one without them sorts last.
func problemPos(path, problem string) (line, col int) {
	rest, ok := strings.CutPrefix(problem, path+":")
	if !ok {
		return math.MaxInt, 0
	}
	f := strings.SplitN(rest, ":", 3)
	if len(f) < 3 {
		return math.MaxInt, 0
	}
	line, err1 := strconv.Atoi(f[0])
	col, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return math.MaxInt, 0
	}
	return line, col
}
