package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runnableMarker marks the shell block that follows it as runnable
// (docs/runnable-docs.md).
const runnableMarker = "<!-- runnable -->"

// docBlock is one runnable shell block of a document.
type docBlock struct {
	line int // of the opening fence
	text string
}

// runnableBlocks returns the blocks of a Markdown document marked
// runnable. A marker not directly followed by a ```sh block is an error,
// so a block cannot drop out of the test unnoticed.
func runnableBlocks(doc []byte) ([]docBlock, error) {
	var blocks []docBlock
	sc := bufio.NewScanner(bytes.NewReader(doc))
	n, marked := 0, 0
	var cur *docBlock
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case marked != 0 && line == "```sh":
			cur, marked = &docBlock{line: n}, 0
		case marked != 0:
			return nil, fmt.Errorf("line %d: %s is not directly followed by a ```sh block", marked, runnableMarker)
		case strings.TrimSpace(line) == runnableMarker:
			marked = n
		}
	}
	if marked != 0 || cur != nil {
		return nil, fmt.Errorf("the document ends inside a runnable block or after a marker")
	}
	return blocks, sc.Err()
}

func TestRunnableBlocks(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string
		err       string
	}{
		{"marked and unmarked", "```sh\nno\n```\n" + runnableMarker + "\n```sh\nyes\nagain\n```\n", []string{"yes\nagain\n"}, ""},
		{"marker before prose", runnableMarker + "\ntext\n```sh\nx\n```\n", nil, "line 1"},
		{"marker before another language", runnableMarker + "\n```toml\nx\n```\n", nil, "line 1"},
		{"unterminated", runnableMarker + "\n```sh\nx\n", nil, "ends inside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks, err := runnableBlocks([]byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			var got []string
			for _, b := range blocks {
				got = append(got, b.text)
			}
			if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestDocsRunnable runs every shell block of README.md and docs/*.md marked
// runnable, in order, each document against a node of its own with no
// config, so that a documented command cannot drift from the CLI. The
// blocks see the variables docs/runnable-docs.md lists.
func TestDocsRunnable(t *testing.T) {
	docs, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{"../README.md"}, docs...)
	total := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := runnableBlocks(data)
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		if len(blocks) == 0 {
			continue
		}
		total += len(blocks)
		name := strings.TrimPrefix(doc, "../")
		t.Run(name, func(t *testing.T) {
			n := startNode(t, "")
			work := t.TempDir()
			env := append(os.Environ(),
				"PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"),
				"HOME="+work, "XDG_STATE_HOME="+filepath.Join(work, ".state"),
				"ALKNET_PASSPHRASE=", "ALKNET_DATA_DIR="+n.dir,
				"ALKNET_NODE="+n.addr, "ALKNET_HOSTPORT="+n.hostPort())
			for _, b := range blocks {
				before := configState(n)
				out, err := runBlock(work, env, b.text)
				if err != nil {
					t.Fatalf("%s:%d: %v\n--- block\n%s--- output\n%s", name, b.line, err, b.text, out)
				}
				// A block that changed the node's config waits, as a
				// reader would, for the node to apply it.
				if configState(n).file != before.file {
					deadline := time.Now().Add(30 * time.Second)
					for configState(n).reloads == before.reloads && time.Now().Before(deadline) {
						time.Sleep(20 * time.Millisecond)
					}
				}
			}
		})
	}
	if total < 4 {
		t.Errorf("found %d runnable blocks; README.md's first steps alone have 3 and docs/http.md 1", total)
	}
}

// docNodeConfig tells that a block changed a node's config and
// that the node reloaded it.
type docNodeConfig struct {
	file    string
	reloads int
}

func configState(n *testNode) docNodeConfig {
	data, _ := os.ReadFile(filepath.Join(n.dir, "alknet.toml"))
	return docNodeConfig{file: string(data), reloads: strings.Count(n.logText(), `msg="config reloaded"`)}
}

// runBlock runs a shell block with bash -eu -o pipefail in dir, within a
// minute, and returns its output.
func runBlock(dir string, env []string, text string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eu", "-o", "pipefail", "-c", text)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}
