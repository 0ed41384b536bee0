package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
)

// exitDown is alknet status's exit code when no node runs on the data dir,
// as LSB init scripts say "not running".
const exitDown = 3

var statusCommand = &cli.Command{
	Name:  "status",
	Usage: "show whether the node on this data dir runs, and how it is doing",
	Description: "Asks the node running on this data dir through its control socket (sys/status):\n" +
		"NodeID, the address it is bound to, uptime, version, services and their ALPNs, live\n" +
		"connections per ALPN, attached workers, paths (connections that came direct or relayed\n" +
		"through a head, the head it is reachable via, the nodes it relays for), the last config\n" +
		"reload and recent auth rejects.\n" +
		"Exits 3 when no node runs there.",
	Flags: withCommon(&cli.BoolFlag{Name: "json", Usage: "print the status as one JSON object"}),
	Action: func(c *cli.Context) error {
		if c.NArg() != 0 {
			return cli.Exit("alknet status: takes no arguments", 2)
		}
		dir, err := dataDir(c)
		if err != nil {
			return err
		}
		cl, ok, err := besideCall(c.Context, c, "", call.Options{})
		if err != nil {
			return err
		}
		out := struct {
			Up      bool   `json:"up"`
			DataDir string `json:"dataDir"`
			*node.Status
		}{DataDir: dir}
		if ok {
			defer cl.Close()
			out.Status = new(node.Status)
			if err := cl.Call(c.Context, "sys/status", nil, out.Status); err != nil {
				return err
			}
			out.Up = true
		}
		if c.Bool("json") {
			b, err := json.Marshal(out)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, string(b))
		} else if !ok {
			fmt.Fprintf(c.App.Writer, "down: no node runs on %s (start one with `alknet serve`)\n", dir)
		} else {
			writeStatus(c.App.Writer, out.Status)
		}
		if !ok {
			return cli.Exit("", exitDown)
		}
		return nil
	},
}

// writeStatus prints st for people.
func writeStatus(w io.Writer, st *node.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	up := time.Duration(st.Uptime * float64(time.Second)).Round(time.Second)
	fmt.Fprintf(tw, "status\tup %s (since %s)\n", up, st.Started.UTC().Format(time.DateTime+" UTC"))
	fmt.Fprintf(tw, "node\t%s\n", st.NodeID)
	fmt.Fprintf(tw, "listen\t%s (QUIC and TCP+TLS)\n", st.Listen)
	fmt.Fprintf(tw, "version\t%s\n", st.Version)
	fmt.Fprintf(tw, "control\t%s\n", st.ControlSocket)
	if st.WebPin != "" {
		fmt.Fprintf(tw, "web pin\t%s (curl --pinnedpubkey)\n", st.WebPin)
	}
	for _, s := range st.Services {
		state := "on"
		if !s.Enabled {
			state = "off"
		}
		var conns []string
		for _, a := range s.ALPNs {
			conns = append(conns, fmt.Sprintf("%s %d", a, st.Connections[a]))
		}
		fmt.Fprintf(tw, "service %s\t%s\t%s\n", s.Name, state, strings.Join(conns, ", "))
	}
	workers := "none"
	if len(st.Workers) > 0 {
		workers = strings.Join(slices.Sorted(slices.Values(st.Workers)), ", ")
	}
	fmt.Fprintf(tw, "workers\t%s\n", workers)
	fmt.Fprintf(tw, "paths\t%s\n", relayPaths(st))
	switch r := st.Reload; {
	case r == nil:
		fmt.Fprintf(tw, "reload\tnone since the start\n")
	case r.OK:
		fmt.Fprintf(tw, "reload\t%s (%s): applied\n", r.At.UTC().Format(time.DateTime+" UTC"), r.Trigger)
	default:
		fmt.Fprintf(tw, "reload\t%s (%s): failed: %s\n", r.At.UTC().Format(time.DateTime+" UTC"), r.Trigger, r.Error)
	}
	fmt.Fprintf(tw, "auth rejects\t%d since the start\n", st.AuthRejectsTotal)
	for _, r := range st.AuthRejects {
		key := ""
		if r.NodeID != "" {
			key = " key " + r.NodeID
		}
		fmt.Fprintf(tw, "\t%s %s from %s%s\n", r.At.UTC().Format(time.DateTime), r.ALPN, r.RemoteIP, key)
	}
	_ = tw.Flush()
}

// relayPaths says how the node's connections reach it: the head it is
// registered with (and the connections that came relayed), the nodes
// registered with it as head.
func relayPaths(st *node.Status) string {
	r := st.Relay
	total := 0
	for _, n := range st.Connections {
		total += n
	}
	parts := []string{fmt.Sprintf("%d direct, %d relayed connections", total-r.RelayedConnections, r.RelayedConnections)}
	if r.Via != "" {
		parts = append(parts, "reachable via "+r.Via)
	}
	if len(r.Registered) > 0 {
		ids := make([]string, len(r.Registered))
		for i, s := range r.Registered {
			ids[i] = s
			if id, err := core.ParseNodeID(s); err == nil {
				ids[i] = id.ShortString()
			}
		}
		parts = append(parts, fmt.Sprintf("relaying for %d: %s", len(ids), strings.Join(ids, ", ")))
	}
	return strings.Join(parts, "; ")
}
