package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// commandAfter lists commands whose arguments, from the first positional
// one after the first n, are a command line to pass on untouched, flags and
// all, as in "alknet ssh ADDR ls -la".
var commandAfter = map[string]int{"ssh": 1}

// flagsFirst reorders args so that each command's flags come before its
// positional arguments, as urfave/cli wants, letting users write
// "alknet peers add ID KEY --scope perf". A "--" ends flag parsing as usual.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds := app.Commands
	i := 1
	var cmd *cli.Command
	// Walk the command path: alknet peers add ...
	for i < len(args) {
		next := findCommand(cmds, args[i])
		if next == nil {
			break
		}
		cmd = next
		out = append(out, args[i])
		cmds = cmd.Subcommands
		i++
	}
	if cmd == nil {
		return args
	}
	var flags, positional []string
	verbatim, hasVerbatim := commandAfter[cmd.Name]
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case hasVerbatim && len(positional) == verbatim && !strings.HasPrefix(a, "-"):
			positional = append(positional, "--")
			positional = append(positional, args[i:]...)
			i = len(args)
		case a == "--":
			positional = append(positional, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			flags = append(flags, a)
			if !strings.Contains(a, "=") && takesValue(cmd, strings.TrimLeft(a, "-")) && i+1 < len(args) {
				i++
				flags = append(flags, args[i])
			}
		default:
			positional = append(positional, a)
		}
	}
	out = append(out, flags...)
	return append(out, positional...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

// takesValue reports whether the command's flag name expects a value.
func takesValue(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, isBool := f.(*cli.BoolFlag); isBool {
				return false
			}
			return true
		}
	}
	return false
}
