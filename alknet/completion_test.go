package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestComplete: commands, subcommands, flags and flag values complete
// from the CLI definitions; a positional argument or "--" ends it.
func TestComplete(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  []string // exactly, in order
		has   []string // at least these
	}{
		{words: []string{"c"}, want: []string{"call", "config", "completion"}},
		{words: []string{"fs", "p"}, want: []string{"pin", "pins", "push"}},
		{words: []string{"--data-dir", "x", "fs", "p"}, want: []string{"pin", "pins", "push"}},
		{words: []string{"call", "--n"}, want: []string{"--network"}},
		{words: []string{"call", "-"}, has: []string{"--peer", "--token", "--network", "--data-dir"}},
		{words: []string{"fs", "ls", "--"}, has: []string{"--json", "--node"}},
		{words: []string{"peers", "add", "--sc"}, want: []string{"--scope"}},
		{words: []string{"call", "--network", ""}, want: []string{"quic", "tcp"}},
		{words: []string{"perf", "--log-level", "w"}, want: []string{"warn"}},
		{words: []string{"call", "--data-dir", ""}, want: nil}, // a path: the shell's files
		{words: []string{"call", "addr", ""}, want: nil},
		{words: []string{"pipe", "--", "-"}, want: nil},
	} {
		var b strings.Builder
		complete(newApp(), tc.words, &b)
		got := strings.Fields(b.String())
		if tc.has != nil {
			for _, h := range tc.has {
				if !slices.Contains(got, h) {
					t.Errorf("complete %q = %q, lacks %q", tc.words, got, h)
				}
			}
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestBashCompletionScript: the bash script, sourced in bash, completes a
// flag and a flag value through the binary.
func TestBashCompletionScript(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	script := filepath.Join(t.TempDir(), "alknet.bash")
	if err := os.WriteFile(script, []byte(run(t, "", "completion", "bash")), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		line string // the words; the last is being completed
		want string
	}{
		{"alknet call --netw", "--network"},
		{"alknet call --network q", "quic"},
		{"alknet peers ad", "add"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		words := strings.Fields(tc.line)
		words[0] = bin
		prog := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _alknet_complete; printf '%s\n' "${COMPREPLY[@]}"`
		out, err := exec.CommandContext(ctx, "bash", append([]string{"-c", prog, "bash", script}, words...)...).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("%s<TAB>: %v %q, want %q", tc.line, err, out, tc.want)
		}
	}
}
