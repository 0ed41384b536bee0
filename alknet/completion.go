package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"
)

// completeCommand is the hidden first argument the completion scripts run
// the binary with: "alknet __complete WORD... CUR" prints the candidates
// for CUR, one a line (see complete).
const completeCommand = "__complete"

// completionScripts hand the words typed so far to `alknet __complete` and
// offer what it prints; when it prints nothing the shell completes file
// names.
var completionScripts = map[string]string{
	"bash": `# bash completion for alknet: source it, or put it in /etc/bash_completion.d/alknet
_alknet_complete() {
	local IFS=$'\n'
	COMPREPLY=($("${COMP_WORDS[0]}" __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o bashdefault -o default -F _alknet_complete alknet
`,
	"zsh": `#compdef alknet
# zsh completion for alknet: put it in a directory on $fpath as _alknet
_alknet() {
	local -a candidates
	candidates=("${(@f)$(${words[1]} __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if [[ -n "${candidates[1]}" ]]; then
		compadd -a candidates
	else
		_files
	fi
}
compdef _alknet alknet
`,
	"fish": `# fish completion for alknet: put it in ~/.config/fish/completions/alknet.fish
function __alknet_complete
	set -l tokens (commandline -opc)
	$tokens[1] __complete $tokens[2..-1] (commandline -ct) 2>/dev/null
end
complete -c alknet -a '(__alknet_complete)'
`,
}

var completionCommand = &cli.Command{
	Name:      "completion",
	Usage:     "print a shell completion script (bash, zsh or fish)",
	ArgsUsage: "bash|zsh|fish",
	Description: "Prints a completion script for the shell; it completes commands, flags and the\n" +
		"values of flags with a fixed set (such as --network). bash:\n" +
		"  alknet completion bash > /etc/bash_completion.d/alknet\n" +
		"zsh (a directory on $fpath):\n" +
		"  alknet completion zsh > \"${fpath[1]}/_alknet\"\n" +
		"fish:\n" +
		"  alknet completion fish > ~/.config/fish/completions/alknet.fish",
	Action: func(c *cli.Context) error {
		script, ok := completionScripts[c.Args().First()]
		if !ok || c.NArg() != 1 {
			return cli.Exit("alknet completion: want bash, zsh or fish", 2)
		}
		fmt.Fprint(c.App.Writer, script)
		return nil
	},
}

// flagValues are the candidates for flags that take one of a fixed set.
var flagValues = map[string][]string{
	"network":          {"quic", "tcp"},
	"log-level":        {"debug", "info", "warn", "error"},
	"log-format":       {"text", "json"},
	"forward-protocol": {"auto", "fwd", "ssh"},
}

// complete prints the candidates for the last of words (the word being
// typed; the others are those before it, after "alknet"): the values of the
// flag before it, flags when it starts with "-", else the subcommands of
// the command the words name. Nothing printed leaves it to the shell (file
// names).
func complete(app *cli.App, words []string, w io.Writer) {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	cmds, flags := app.Commands, app.Flags
	var valueOf string // the flag whose value cur is
	for i := 0; i < len(before); i++ {
		word := before[i]
		switch {
		case word == "--":
			return // only positional arguments follow
		case len(word) > 1 && word[0] == '-':
			name := strings.TrimLeft(word, "-")
			if strings.Contains(name, "=") || !flagTakesValue(flags, name) {
				continue
			}
			if i == len(before)-1 {
				valueOf = name
			}
			i++ // its value
		default:
			if c := findCommand(cmds, word); c != nil {
				cmds, flags = c.Subcommands, c.Flags
			} else {
				cmds = nil // a positional argument: no subcommand follows
			}
		}
	}
	var out []string
	switch {
	case valueOf != "":
		out = flagValues[valueOf]
	case strings.HasPrefix(cur, "-"):
		for _, f := range flags {
			if bf, ok := f.(*cli.BoolFlag); ok && bf.Hidden {
				continue
			}
			name := f.Names()[0]
			if len(name) == 1 {
				out = append(out, "-"+name)
			} else {
				out = append(out, "--"+name)
			}
		}
	default:
		for _, c := range cmds {
			if !c.Hidden {
				out = append(out, c.Name)
			}
		}
	}
	for _, o := range out {
		if strings.HasPrefix(o, cur) {
			fmt.Fprintln(w, o)
		}
	}
}
