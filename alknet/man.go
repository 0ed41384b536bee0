package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"
)

// manFile is the manual page alknet man writes, and the name it is
// checked in under (docs/man/alknet.1).
const manFile = "alknet.1"

// manCommand is a function, not a variable like the other commands: its
// action builds the app (newApp), which lists it.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:      "man",
		Usage:     "print the manual page alknet(1), generated from these commands and flags",
		ArgsUsage: " ",
		Description: "Prints the page in roff on standard output, or writes DIR/alknet.1 with --dir.\n" +
			"The page is the same on every machine (no date, no home directory), so a copy can\n" +
			"be checked in and installed with the binary:\n" +
			"  alknet man | man -l -\n" +
			"  alknet man --dir /usr/local/share/man/man1",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "dir", Usage: "write alknet.1 into this directory instead of standard output"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return cli.Exit("alknet man: takes no arguments (--dir DIR writes the page into DIR)", 2)
			}
			// A fresh app, not c.App: parsing has already put environment
			// values (ALKNET_DATA_DIR, say) into c.App's flags.
			page := manPage(newApp())
			dir := c.String("dir")
			if dir == "" {
				_, err := c.App.Writer.Write(page)
				return err
			}
			path := filepath.Join(dir, manFile)
			if err := os.WriteFile(path, page, 0o644); err != nil {
				return fmt.Errorf("alknet man: %w", err)
			}
			fmt.Fprintln(c.App.ErrWriter, "wrote", path)
			return nil
		},
	}
}

// manPage renders app's commands and flags as the man page alknet(1):
// markdown built here, turned into roff by go-md2man.
func manPage(app *cli.App) []byte {
	var b bytes.Buffer
	// No date and no version: the page must not change between runs.
	fmt.Fprintf(&b, "%% ALKNET 1 \"\" \"alknet\" \"User Commands\"\n\n")
	fmt.Fprintf(&b, "# NAME\n\n%s - %s\n\n", app.Name, app.Usage)
	fmt.Fprintf(&b, "# SYNOPSIS\n\n**%s** [*GLOBAL OPTIONS*] *COMMAND* [*OPTIONS*] [*ARGUMENTS*...]\n\n", app.Name)
	fmt.Fprintf(&b, "# DESCRIPTION\n\n")
	manText(&b, app.Description)
	manText(&b, "Every command takes the global options, before or after the command name "+
		"(alknet --data-dir DIR id, alknet id --data-dir DIR). Options may follow the arguments. "+
		"alknet help COMMAND prints the same text as this page for one command.")
	fmt.Fprintf(&b, "# GLOBAL OPTIONS\n\n")
	manFlags(&b, app.Flags, nil)
	common := map[string]bool{}
	for _, f := range commonFlags() {
		common[f.Names()[0]] = true
	}
	fmt.Fprintf(&b, "# COMMANDS\n\n")
	for _, cmd := range app.Commands {
		manCommandSection(&b, app.Name, cmd, common)
	}
	fmt.Fprintf(&b, "# ENVIRONMENT\n\n")
	env := map[string][]string{}
	manEnv(app.Flags, app.Commands, env)
	env["ALKNET_PASSPHRASE"] = []string{"the vault passphrase when no --passphrase-file is given"}
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "**%s**\n: %s\n\n", name, manEscape(strings.Join(env[name], "; ")))
	}
	fmt.Fprintf(&b, "# FILES\n\n")
	for _, f := range [][2]string{
		{"<data-dir>/" + vaultFile, "the encrypted vault: the recovery phrase the node key and every other key derive from"},
		{"<data-dir>/" + configFile, "the node's config; every key is optional (see docs/config.md)"},
		{"<data-dir>/alknet.sock", "the control socket of a running alknet serve (mode 0600): commands on the same data dir reach the node through it as its operator"},
		{"<data-dir>/" + knownNodesFile, "the NodeID first seen at each address dialled without one, like OpenSSH's known_hosts (see known-nodes)"},
		{"<data-dir>/" + sessionsFile, "TLS session tickets, to resume instead of a full handshake"},
	} {
		fmt.Fprintf(&b, "*%s*\n: %s\n\n", manEscape(f[0]), manEscape(f[1]))
	}
	fmt.Fprintf(&b, "# EXIT STATUS\n\n")
	manText(&b, "0 on success, 1 on an error (printed on standard error, one line starting with alknet:), "+
		"2 on a usage error, 130 when a subscription or a long-running client is stopped with Ctrl-C. "+
		"alknet ssh exits with the remote command's status.")
	fmt.Fprintf(&b, "# SEE ALSO\n\n")
	manText(&b, "ssh(1), sftp(1), git(1); the user guide and the config reference in the docs directory "+
		"of the source, https://github.com/alkdev/alknet.")
	return asciiRoff(md2man.Render(b.Bytes()))
}

// asciiRoff replaces each non-ASCII character of a roff page with its
// groff escape (\[u2026] for "…"), which every man reader takes whatever
// the locale, where raw UTF-8 makes troff warn without preconv.
func asciiRoff(page []byte) []byte {
	var b bytes.Buffer
	for _, r := range string(page) {
		if r < 0x80 {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "\\[u%04X]", r)
		}
	}
	return b.Bytes()
}

// manCommandSection writes cmd (and its subcommands) as a subsection
// named by its full command line; parent is the command line before it.
// The common flags are listed once, under GLOBAL OPTIONS.
func manCommandSection(b *bytes.Buffer, parent string, cmd *cli.Command, common map[string]bool) {
	if cmd.Hidden {
		return
	}
	line := parent + " " + cmd.Name
	fmt.Fprintf(b, "### %s", line)
	if args := strings.TrimSpace(cmd.ArgsUsage); args != "" && len(cmd.Subcommands) == 0 {
		fmt.Fprintf(b, " %s", manEscape(args))
	} else if len(cmd.Subcommands) > 0 {
		fmt.Fprintf(b, " *COMMAND*")
	}
	fmt.Fprintf(b, "\n\n")
	if len(cmd.Aliases) > 0 {
		manText(b, "Also: "+strings.Join(cmd.Aliases, ", ")+".")
	}
	if cmd.Usage != "" {
		manText(b, upperFirst(cmd.Usage)+".")
	}
	manText(b, cmd.Description)
	manFlags(b, cmd.Flags, common)
	for _, sub := range cmd.Subcommands {
		manCommandSection(b, line, sub, common)
	}
}

// manFlags writes flags as a definition list, leaving out those in skip.
func manFlags(b *bytes.Buffer, flags []cli.Flag, skip map[string]bool) {
	for _, f := range flags {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok || skip[f.Names()[0]] {
			continue
		}
		if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
			continue
		}
		var names []string
		for _, n := range f.Names() {
			if len(n) == 1 {
				names = append(names, "**-"+manEscape(n)+"**")
			} else {
				names = append(names, "**--"+manEscape(n)+"**")
			}
		}
		term := strings.Join(names, ", ")
		switch {
		case df.TakesValue() && len(f.Names()[0]) == 1:
			term += " *value*"
		case df.TakesValue():
			term += "=*value*"
		}
		desc := df.GetUsage()
		if df.TakesValue() {
			if def := df.GetDefaultText(); def != "" && def != `""` && def != "[]" {
				desc += " (default: " + def + ")"
			}
		}
		if env := df.GetEnvVars(); len(env) > 0 {
			desc += " (environment: " + strings.Join(env, ", ") + ")"
		}
		fmt.Fprintf(b, "%s\n: %s\n\n", term, manEscape(desc))
	}
}

// manEnv collects the environment variables flags read, each with the
// flags that read it.
func manEnv(flags []cli.Flag, cmds []*cli.Command, env map[string][]string) {
	for _, f := range flags {
		df, ok := f.(cli.DocGenerationFlag)
		if !ok {
			continue
		}
		for _, e := range df.GetEnvVars() {
			what := "--" + f.Names()[0]
			if !slices.Contains(env[e], what) {
				env[e] = append(env[e], what)
			}
		}
	}
	for _, c := range cmds {
		manEnv(c.Flags, c.Subcommands, env)
	}
}

// manText writes text as paragraphs: a blank line ends one, lines that
// start with two spaces are examples (a code block), the rest is prose
// joined into one paragraph, escaped so markdown reads it literally.
func manText(b *bytes.Buffer, text string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return
	}
	var prose, code []string
	flush := func() {
		if len(prose) > 0 {
			fmt.Fprintf(b, "%s\n\n", manEscape(strings.Join(prose, " ")))
			prose = nil
		}
		if len(code) > 0 {
			fmt.Fprintf(b, "```\n%s\n```\n\n", strings.Join(code, "\n"))
			code = nil
		}
	}
	for _, l := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(l) == "":
			flush()
		case strings.HasPrefix(l, "  "):
			if len(prose) > 0 {
				flush()
			}
			code = append(code, strings.TrimPrefix(l, "  "))
		default:
			if len(code) > 0 {
				flush()
			}
			prose = append(prose, strings.TrimSpace(l))
		}
	}
	flush()
}

// manEscape backslash-escapes what markdown could read as markup, so
// text written for the terminal reaches the page as written: emphasis,
// code, links and HTML anywhere, and what starts a heading, a list, a quote
// or a definition at the start of the text (manText joins a paragraph
// into one line).
func manEscape(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case strings.ContainsRune("\\`*_[]<>&", r),
			i == 0 && strings.ContainsRune("#+-:>|%!", r),
			r == '.' && i > 0 && strings.Trim(s[:i], "0123456789") == "":
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
