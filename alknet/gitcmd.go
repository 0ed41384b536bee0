package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/git"
)

// The names under which the alknet binary serves git (see
// `alknet git install-helper`): the remote helper for alknet:// URLs, and
// the core.gitProxy command for git:// URLs. git runs core.gitProxy
// without a shell, so the proxy needs a name of its own rather than
// "alknet pipe …" with arguments.
const (
	gitHelperName = "git-remote-alknet"
	gitProxyName  = "alknet-git-proxy"
)

// gitLinkArgs turns the arguments git passes to one of the git link names
// (REMOTE URL for the helper, HOST PORT for the proxy) into the alknet
// command line that serves them.
func gitLinkArgs(args []string) []string {
	if filepath.Base(args[0]) == gitProxyName {
		return append([]string{"alknet", "pipe", "--alpn", git.ALPN, "--git-proxy"}, args[1:]...)
	}
	return append([]string{"alknet", "git", "remote-helper"}, args[1:]...)
}

var gitCommand = &cli.Command{
	Name:  "git",
	Usage: "git hosting: manage repositories, and reach them from stock git",
	Description: "Repositories are served on alknet/git. After `alknet git install-helper` stock git reaches\n" +
		"them through the remote helper:\n\n" +
		"  git clone alknet://NODEID@HOST:PORT/REPO.git\n\n" +
		"or through alknet-git-proxy (alknet pipe --alpn alknet/git --git-proxy) for git:// URLs:\n\n" +
		"  git -c core.gitProxy=alknet-git-proxy clone git://HOST:PORT/REPO.git",
	Subcommands: []*cli.Command{
		{
			Name:      "repos",
			Usage:     "list the repositories you may read",
			ArgsUsage: "[NODEID@]HOST:PORT",
			Flags:     withCommon(networkFlag, jsonFlag),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 {
					return cli.Exit("alknet git repos: want one address", 2)
				}
				var repos []git.RepoInfo
				err := withCall(c.Context, c, func(client *call.Client) error {
					return client.Call(c.Context, "git/repos/list", nil, &repos)
				})
				if err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c, orEmpty(repos))
				}
				tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tPUBLIC\tWRITE")
				for _, r := range repos {
					fmt.Fprintf(tw, "%s\t%v\t%v\n", r.Name, r.Public, r.Write)
				}
				return tw.Flush()
			},
		},
		{
			Name:      "create",
			Usage:     "create an empty repository (needs git:create or admin)",
			ArgsUsage: "[NODEID@]HOST:PORT NAME",
			Flags:     withCommon(&cli.BoolFlag{Name: "public", Usage: "let anyone clone it"}, networkFlag),
			Action: func(c *cli.Context) error {
				if c.NArg() != 2 {
					return cli.Exit("alknet git create: want ADDR NAME", 2)
				}
				var info git.RepoInfo
				in := git.CreateInput{Name: c.Args().Get(1), Public: c.Bool("public")}
				err := withCall(c.Context, c, func(client *call.Client) error {
					return client.Call(c.Context, "git/repos/create", in, &info)
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.Writer, "created %s\n", info.Name)
				return nil
			},
		},
		{
			Name:      "install-helper",
			Usage:     "link git-remote-alknet and alknet-git-proxy to this binary, for stock git",
			ArgsUsage: "[DIR]",
			Description: "Creates DIR/git-remote-alknet (for alknet:// URLs) and DIR/alknet-git-proxy (a\n" +
				"core.gitProxy command for git:// URLs) as symbolic links to this binary; DIR defaults\n" +
				"to the binary's own directory and must be on git's PATH.",
			Action: func(c *cli.Context) error {
				if c.NArg() > 1 {
					return cli.Exit("alknet git install-helper: want at most one directory", 2)
				}
				for _, name := range []string{gitHelperName, gitProxyName} {
					link, err := installLink(c.Args().First(), name)
					if err != nil {
						return err
					}
					fmt.Fprintln(c.App.Writer, link)
				}
				return nil
			},
		},
		{
			Name:      "remote-helper",
			Usage:     "act as git-remote-alknet (git runs this)",
			ArgsUsage: "REMOTE URL",
			Hidden:    true,
			Flags:     withCommon(networkFlag),
			Action: func(c *cli.Context) error {
				if c.NArg() != 2 {
					return cli.Exit("git-remote-alknet: want REMOTE URL (git runs this helper for alknet:// URLs)", 2)
				}
				d, err := dialer(c)
				if err != nil {
					return err
				}
				ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
				defer stop()
				return git.RemoteHelper(ctx, c.Args().Get(1), os.Stdin, os.Stdout, func(ctx context.Context, addr string) (core.Conn, error) {
					return dial(ctx, d, addr, git.ALPN)
				})
			},
		},
	},
}

// installLink links dir/name (dir default: the binary's own directory) to
// the running binary and returns the link's path. An existing link to the
// same binary is kept; anything else there is an error.
func installLink(dir, name string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return "", err
	}
	if dir == "" {
		dir = filepath.Dir(exe)
	}
	link := filepath.Join(dir, name)
	if target, err := os.Readlink(link); err == nil && target == exe {
		return link, nil
	} else if _, err := os.Lstat(link); !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s exists and is not a link to %s; remove it first", link, exe)
	}
	if err := os.Symlink(exe, link); err != nil {
		return "", err
	}
	return link, nil
}
