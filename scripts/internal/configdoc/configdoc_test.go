package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestGenerateFixture renders testdata/fix/app's config, which reaches
// testdata/fix/lib, and checks that each line below is in the output.
func TestGenerateFixture(t *testing.T) {
	var buf bytes.Buffer
	if err := generate(&buf, "testdata/fix", "example.com/fix/", "app", "config"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	tests := []struct {
		name string
		line string
	}{
		{"intro", "# Configuration reference (`alknet.toml`)"},
		{"embedded section, static", "## `[server]` (static)"},
		{"section prose after colon", "Where the app listens."},
		{"quoted default", "| `addr` | string | `\"[::]:80\"` | The host:port to listen on. |"},
		{"text type is a string, duration default quoted, remark kept", "| `timeout` | string | `\"5s\"` | Bounds a request. Negative: none. |"},
		{"array of tables, dynamic", "## `[[users]]` (dynamic)"},
		{"required", "| `name` | string | required | The user's name; required. |"},
		{"pointer, default with remark", "| `admin` | boolean | `true` (when nil) | True for administrators. |"},
		{"date-time, no default", "| `since` | date-time | none | When the user was added. |"},
		{"own section", "## `[store]` (static)"},
		{"docs link", "Where data lives; see [store.md](store.md)."},
		{"sibling key, escaped <", "| `dir` | string | `\"<data-dir>/store\"` | Holds the data; it must exist when `read_only` is set. |"},
		{"zero default", "| `read_only` | boolean | `false` | Refuses writes. |"},
		{"map of scalars", "| `labels` | table of string | `{}` | Free-form key-value pairs. |"},
		{"number with remark", "| `max_bytes` | integer | `1024` (1 KiB) | Bounds the store. |"},
		{"subsection with own status", "### `[store.default]` (dynamic)"},
		{"field prose, sentence-opening Default kept", "`default` is the rule of names not in `rules`."},
		{"type prose", "This section is an access rule."},
		{"doc link, quoted value", "| `tags` | array of string | `[]` | Matched against `lib.User` names; a `\"*\"` matches all. |"},
		{"map of tables, inherited status", "### `[store.rules.\"NAME\"]` (static)"},
		{"type used twice", "Its keys are those of `[store.default]`."},
		{"trailer", "## Environment and flags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(out, "\n"+tt.line+"\n") && !strings.HasPrefix(out, tt.line+"\n") {
				t.Errorf("missing line\n%s\nin\n%s", tt.line, out)
			}
		})
	}
	for _, bad := range []string{"internal", "Ignored", "ignored"} {
		if strings.Contains(out, bad) {
			t.Errorf("output mentions %q, which is not a key", bad)
		}
	}
	if n := strings.Count(out, "| `public` |"); n != 1 {
		t.Errorf("rule's table printed %d times, want 1", n)
	}
}

func TestSplitDefault(t *testing.T) {
	tests := []struct {
		doc, rest, def string
	}{
		{"X is a. Default 10s.", "X is a.", "10s"},
		{"X is a. Default 15s; negative disables.", "X is a. Negative disables.", "15s"},
		{"X is a. Default: Let's Encrypt\nproduction.", "X is a.", "Let's Encrypt production"},
		{"X is a. Default none: all denied.", "X is a. All denied.", "none"},
		{`X is a. Default "[::]:4433" (Y).`, "X is a.", `"[::]:4433" (Y)`},
		{"X is a name; required.", "X is a name; required.", "required"},
		{"Defaults are not this.", "Defaults are not this.", ""},
		{"X is a. Default is the word.", "X is a. Default is the word.", ""},
	}
	for _, tt := range tests {
		rest, def := splitDefault(tt.doc)
		if rest != tt.rest || def != tt.def {
			t.Errorf("splitDefault(%q) = %q, %q; want %q, %q", tt.doc, rest, def, tt.rest, tt.def)
		}
	}
}

func TestFirstDiff(t *testing.T) {
	tests := []struct {
		a, b string
		n    int
		same bool
	}{
		{"x\ny\n", "x\ny\n", 0, true},
		{"x\ny\n", "x\nz\n", 2, false},
		{"x\n", "x\ny\n", 2, false},
		{"x\ny\n", "x\n", 2, false},
	}
	for _, tt := range tests {
		d, differ := firstDiff([]byte(tt.a), []byte(tt.b))
		if differ == tt.same || d.n != tt.n {
			t.Errorf("firstDiff(%q, %q) = line %d, %v; want line %d, %v", tt.a, tt.b, d.n, differ, tt.n, !tt.same)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name, dir, typ, want string
	}{
		{"no such type", "app", "nope", "type nope not found"},
		{"no such package", "missing", "config", "no Go types"},
		{"not a struct", "lib", "Duration", "not a struct"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := generate(&bytes.Buffer{}, "testdata/fix", "example.com/fix/", tt.dir, tt.typ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}
