package main

import (
	"slices"
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
	// Global flags before the command ("alknet --data-dir X id") move after
	// it: each command declares the common flags itself, and urfave/cli
	// reads a flag from the innermost command that declares it.
	var global []string
	i := 1
	for ; i < len(args) && strings.HasPrefix(args[i], "-") && len(args[i]) > 1 && args[i] != "--"; i++ {
		global = append(global, args[i])
		name := strings.TrimLeft(args[i], "-")
		if !strings.Contains(name, "=") && flagTakesValue(app.Flags, name) && i+1 < len(args) {
			i++
			global = append(global, args[i])
		}
	}
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
	// Those the command does not declare stay before it, for the app.
	var flags, kept, positional []string
	for j := 0; j < len(global); j++ {
		name, _, _ := strings.Cut(strings.TrimLeft(global[j], "-"), "=")
		n := 1
		if !strings.Contains(global[j], "=") && flagTakesValue(app.Flags, name) && j+1 < len(global) {
			n = 2
		}
		if takesFlag(cmd, name) {
			flags = append(flags, global[j:j+n]...)
		} else {
			kept = append(kept, global[j:j+n]...)
		}
		j += n - 1
	}
	out = slices.Insert(out, 1, kept...)
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
	return flagTakesValue(cmd.Flags, name)
}

// flagTakesValue reports whether the flag name among flags expects a value.
func flagTakesValue(flags []cli.Flag, name string) bool {
	for _, f := range flags {
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

// takesFlag reports whether cmd declares the flag name.
func takesFlag(cmd *cli.Command, name string) bool {
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}
