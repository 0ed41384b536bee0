package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/config"
	"github.com/alkdev/alknet/core"
)

var knownNodesCommand = &cli.Command{
	Name:  "known-nodes",
	Usage: "list or forget the nodes this data dir trusts on first use",
	Description: "Client commands record the NodeID first seen at an address given without one\n" +
		"(<data-dir>/known_nodes, like OpenSSH's known_hosts), saying so once on stderr\n" +
		"(\"alknet: added node NODEID at HOST:PORT to FILE\"), and refuse another key there\n" +
		"later. After a node's key changed on purpose, forget the old entry with rm.",
	Subcommands: []*cli.Command{{
		Name:  "list",
		Usage: "list the recorded addresses and their NodeIDs",
		Flags: withCommon(jsonFlag),
		Action: func(c *cli.Context) error {
			path, err := knownNodesPath(c)
			if err != nil {
				return err
			}
			entries, _, err := readKnownNodes(path)
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c, entries)
			}
			w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ADDRESS\tNODE ID")
			for _, e := range entries {
				fmt.Fprintf(w, "%s\t%s\n", e.Addr, e.NodeID)
			}
			return w.Flush()
		},
	}, {
		Name:      "rm",
		Usage:     "forget every entry of an address (host:port), a host, or a NodeID",
		ArgsUsage: "HOST|HOST:PORT|NODEID",
		Flags:     withCommon(),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("want one argument: HOST, HOST:PORT or NODEID (see alknet known-nodes list)")
			}
			path, err := knownNodesPath(c)
			if err != nil {
				return err
			}
			removed, err := forgetKnownNode(path, c.Args().First())
			if err != nil {
				return err
			}
			for _, e := range removed {
				fmt.Fprintf(c.App.Writer, "removed %s %s from %s\n", e.Addr, e.NodeID, path)
			}
			return nil
		},
	}},
}

func knownNodesPath(c *cli.Context) (string, error) {
	dir, err := dataDir(c)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, knownNodesFile), nil
}

// knownNode is one entry of the known_nodes file.
type knownNode struct {
	Addr   string `json:"addr"`
	NodeID string `json:"nodeId"`
	Line   int    `json:"line"`
}

// readKnownNodes returns the entries of the known_nodes file (none if it
// does not exist) and its lines.
func readKnownNodes(path string) ([]knownNode, []string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []knownNode{}, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("known nodes: %w", err)
	}
	entries := []knownNode{}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		lines = append(lines, sc.Text())
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 2 {
			return nil, nil, fmt.Errorf("%s:%d: want \"host:port nodeid\"", path, n)
		}
		if _, err := core.ParseNodeID(f[1]); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		entries = append(entries, knownNode{Addr: f[0], NodeID: f[1], Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("known nodes: %w", err)
	}
	return entries, lines, nil
}

// forgetKnownNode removes the entries matching what (an address, its host,
// or a NodeID) from the file, keeping every other line, and returns them.
func forgetKnownNode(path, what string) ([]knownNode, error) {
	entries, lines, err := readKnownNodes(path)
	if err != nil {
		return nil, err
	}
	drop := map[int]bool{}
	var removed []knownNode
	for _, e := range entries {
		host, _, err := net.SplitHostPort(e.Addr)
		if e.Addr == what || e.NodeID == what || (err == nil && host == strings.Trim(what, "[]")) {
			drop[e.Line] = true
			removed = append(removed, e)
		}
	}
	if len(removed) == 0 {
		return nil, fmt.Errorf("no entry of %s matches %q (see alknet known-nodes list)", path, what)
	}
	var out bytes.Buffer
	for i, l := range lines {
		if !drop[i+1] {
			out.WriteString(l + "\n")
		}
	}
	if err := config.WriteFileAtomic(path, out.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("known nodes: %w", err)
	}
	return removed, nil
}
