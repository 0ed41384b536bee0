// Command configdoc writes docs/config.md, the alknet.toml reference, from
// the doc comments of the CLI's config structs, so the reference cannot
// drift from the code. scripts/configdoc runs it; scripts/test runs it with
// --check.
//
//	scripts/configdoc          rewrite docs/config.md
//	scripts/configdoc --check  exit 1 if docs/config.md is stale
//
// It parses the Go source with go/parser, starting at Config in
// alknet/internal/node and following named types into the other modules of the
// repository. Conventions the comments follow:
//
//   - A section field's comment says "Static" or "Dynamic: hot-reloaded" in
//     a sentence of its own; a subsection inherits its parent's otherwise.
//   - A key's comment gives its default in a sentence "Default X." (X a TOML
//     value or a few words); text after "; " or ": " stays in the meaning.
//     A key without one shows its type's zero value, or "required" when the
//     comment says required.
//   - A type with an UnmarshalText method is a string in the file.
package main

import (
	"bytes"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// modulePrefix is the import path prefix of every alknet package; the rest
// of the path is its directory in the repository.
const modulePrefix = "github.com/alkdev/alknet/"

// output is the generated file, relative to the repository root.
const output = "docs/config.md"

var (
	//go:embed intro.md
	intro string
	//go:embed trailer.md
	trailer string
)

func main() {
	check := flag.Bool("check", false, "report whether "+output+" is up to date; write nothing")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: scripts/configdoc [--check]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*check, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}

func run(check bool, out io.Writer) error {
	root, err := findRoot()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := generate(&buf, root, modulePrefix, "alknet/internal/node", "Config"); err != nil {
		return err
	}
	path := filepath.Join(root, output)
	if !check {
		return os.WriteFile(path, buf.Bytes(), 0o644)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if line, ok := firstDiff(old, buf.Bytes()); ok {
		return fmt.Errorf("%s is stale from line %d (%s): run scripts/configdoc and commit the result", output, line.n, line.text)
	}
	fmt.Fprintf(out, "%s is up to date\n", output)
	return nil
}

// generate writes the reference of the struct typeName in dir (relative to
// root) to w. Import paths starting with prefix name directories under root.
func generate(w io.Writer, root, prefix, dir, typeName string) error {
	l := newLoader(root, prefix)
	t, err := l.named(dir, typeName)
	if err != nil {
		return err
	}
	if t.kind != table {
		return fmt.Errorf("%s.%s is not a struct", dir, typeName)
	}
	return render(w, t.st, intro, trailer)
}

// findRoot returns the top directory of the git checkout holding the
// working directory: the alknet repository.
func findRoot() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: git rev-parse: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// diffLine is the first line where two texts differ.
type diffLine struct {
	n    int
	text string // a short description of the difference
}

// firstDiff finds the first line where old and generated differ.
func firstDiff(old, generated []byte) (diffLine, bool) {
	a, b := strings.Split(string(old), "\n"), strings.Split(string(generated), "\n")
	for i := 0; i < max(len(a), len(b)); i++ {
		switch {
		case i >= len(a):
			return diffLine{i + 1, fmt.Sprintf("missing %q", b[i])}, true
		case i >= len(b):
			return diffLine{i + 1, fmt.Sprintf("extra %q", a[i])}, true
		case a[i] != b[i]:
			return diffLine{i + 1, fmt.Sprintf("have %q, want %q", a[i], b[i])}, true
		}
	}
	return diffLine{}, false
}
