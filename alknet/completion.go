package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// completionScripts ask the binary itself for candidates: urfave/cli answers
// --generate-bash-completion with the subcommands, or the flags when the
// word being completed starts with "-".
var completionScripts = map[string]string{
	"bash": `# bash completion for alknet: source it, or put it in /etc/bash_completion.d/alknet
_alknet_complete() {
	local cur="${COMP_WORDS[COMP_CWORD]}"
	local words
	if [[ "$cur" == -* ]]; then
		words=$("${COMP_WORDS[0]}" "${COMP_WORDS[@]:1:COMP_CWORD-1}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		words=$("${COMP_WORDS[0]}" "${COMP_WORDS[@]:1:COMP_CWORD-1}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o bashdefault -o default -F _alknet_complete alknet
`,
	"zsh": `#compdef alknet
# zsh completion for alknet: put it in a directory on $fpath as _alknet
_alknet() {
	local -a candidates
	local cur=${words[CURRENT]}
	if [[ "$cur" == -* ]]; then
		candidates=("${(@f)$(${words[1]} ${words[2,CURRENT-1]} $cur --generate-bash-completion 2>/dev/null)}")
	else
		candidates=("${(@f)$(${words[1]} ${words[2,CURRENT-1]} --generate-bash-completion 2>/dev/null)}")
	fi
	if [[ -n "$candidates" ]]; then
		compadd -a candidates
	else
		_files
	fi
}
compdef _alknet alknet
`,
}

var completionCommand = &cli.Command{
	Name:      "completion",
	Usage:     "print a shell completion script (bash or zsh)",
	ArgsUsage: "bash|zsh",
	Description: "Prints a completion script for the shell. bash:\n" +
		"  alknet completion bash > /etc/bash_completion.d/alknet\n" +
		"zsh (a directory on $fpath):\n" +
		"  alknet completion zsh > \"${fpath[1]}/_alknet\"",
	Action: func(c *cli.Context) error {
		script, ok := completionScripts[c.Args().First()]
		if !ok || c.NArg() != 1 {
			return cli.Exit("alknet completion: want bash or zsh", 2)
		}
		fmt.Fprint(c.App.Writer, script)
		return nil
	},
}
