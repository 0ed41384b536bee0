package scalebench

import (
	"fmt"
	"io"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// Goals of issue 18 for what grows with the work.
const (
	// connGoalKiB bounds the node's memory per idle connection.
	connGoalKiB = 40
	// workersP50Goal bounds a head's routed p50 with many workers against
	// one with few.
	workersP50Goal = 1.2
	// headRSSGoal bounds a head's RSS with many workers.
	headRSSGoal = 100 << 20
	// linearAllowance bounds how much worse than linear a command may
	// grow: (t(big) / t(small)) / (big / small).
	linearAllowance = 1.5
)

// Report is what [WriteMarkdown] prints: the parts that ran.
type Report struct {
	Conns   []ConnsResult
	Workers []WorkersResult
	Store   []StoreResult
	// Errs are the failures of parts, printed with them.
	ConnsErr, WorkersErr, StoreErr error
}

// WriteMarkdown prints the tables of the parts that ran, then their goal
// lines, last.
func WriteMarkdown(w io.Writer, r Report) {
	fmt.Fprintf(w, "## What grows with the work (issue 18)\n\n")
	var goals []func()
	if len(r.Conns) > 0 || r.ConnsErr != nil {
		fmt.Fprintf(w, "### Memory per idle connection\n\n")
		fmt.Fprintf(w, "`alknet serve` with max_conns and max_conns_per_ip raised; N connections on alknet/call from one known peer "+
			"(QUIC: all on one UDP socket of the bench; TCP+TLS: one socket each), idle but for keep-alives; the node's VmRSS "+
			"before the dials and after the idle time. Goal: <= %d KiB per connection.\n\n", connGoalKiB)
		failed(w, r.ConnsErr)
		fmt.Fprintf(w, "| network | connections | open | refused | alive after idle | dial time | RSS before MiB | RSS after MiB | KiB per connection |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, c := range r.Conns {
			fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %v | %.1f | %.1f | %.1f |\n", c.Network, c.Want, c.Open, c.Refused, c.Alive,
				c.Dial.Round(time.Millisecond), mib(c.Before), mib(c.After), c.PerConn()/1024)
		}
		fmt.Fprintln(w)
		for _, c := range r.Conns {
			if c.Refused > 0 || c.Cut {
				fmt.Fprintf(w, "%s, %d connections: the node refused %d dials (first: %v)%s; its [limits] max_conns and max_conns_per_ip were %d.\n\n",
					c.Network, c.Want, c.Refused, c.FirstErr, map[bool]string{true: "; the dials were cut at the deadline", false: ""}[c.Cut], c.Limit)
			}
		}
		conns := r.Conns
		goals = append(goals, func() {
			for _, c := range conns {
				ratio := c.PerConn() / 1024 / connGoalKiB
				if c.Open < c.Want || c.Alive < c.Open {
					ratio = max(ratio, 1.001) // connections the node refused or dropped miss the goal
				}
				harness.WriteGoal(w, fmt.Sprintf("idle-conn-memory-%s-%d", c.Network, c.Want), "loopback", ratio, "<=", 1)
			}
		})
	}
	if len(r.Workers) > 0 || r.WorkersErr != nil {
		fmt.Fprintf(w, "### A head with many workers\n\n")
		fmt.Fprintf(w, "One `alknet serve` head per size; the workers are in-process call clients of the bench, each with a key of its own on a QUIC "+
			"connection of its own, serving bench/echo to the head (as `serve --join` does). One client with call:route calls peers/call "+
			"(`alknet call --peer`) to each worker in turn, one call at a time, alternating with a call to the first worker only (*one worker*), heads interleaved round by round. "+
			"Goals: p50 within %.1fx of the smallest head's, head RSS <= %d MiB.\n\n", workersP50Goal, headRSSGoal>>20)
		failed(w, r.WorkersErr)
		fmt.Fprintf(w, "| workers | attach time | routed calls | p50 | p99 | p50, one worker | head RSS idle MiB | with workers MiB | after the calls MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, h := range r.Workers {
			fmt.Fprintf(w, "| %d | %v | %d | %v | %v | %v | %.1f | %.1f | %.1f |\n", h.Workers, h.Attach.Round(time.Millisecond), len(h.Latencies),
				h.P50().Round(time.Microsecond), harness.Percentile(h.Latencies, 99).Round(time.Microsecond),
				harness.Percentile(h.One, 50).Round(time.Microsecond), mib(h.Idle), mib(h.Attached), mib(h.After))
		}
		fmt.Fprintln(w)
		ws := r.Workers
		goals = append(goals, func() {
			if len(ws) == 0 {
				return
			}
			base := ws[0]
			for _, h := range ws[1:] {
				harness.WriteGoal(w, fmt.Sprintf("head-p50-%d-vs-%d-workers", h.Workers, base.Workers), "loopback",
					float64(h.P50())/float64(base.P50()), "<=", workersP50Goal)
			}
			last := ws[len(ws)-1]
			harness.WriteGoal(w, fmt.Sprintf("head-rss-%d-workers", last.Workers), "loopback",
				float64(max(last.Attached, last.After))/headRSSGoal, "<=", 1)
		})
	}
	if len(r.Store) > 0 || r.StoreErr != nil {
		fmt.Fprintf(w, "### fs blocks and git refs\n\n")
		fmt.Fprintf(w, "Each command a fresh process against a running `alknet serve`, median of the runs (the process's start, ~tens of ms, included). "+
			"fs: a directory of N one-block files added with `fs add` (no node running, `no_sync`) and pinned; `fs ls ROOT` lists N entries, "+
			"`fs gc` marks every pinned block (the files' and the directory's HAMT shards, as `fs stat` counts them) and sweeps the store, "+
			"deleting nothing; both through the node's control socket. "+
			"git: a bare repository of N branches (packed refs) in the node's git root; `git ls-remote alknet://…` through git-remote-alknet, "+
			"and on the repository's path for reference. The goal, linear or better: from each size to the next, "+
			"(time ratio) / (size ratio) <= %.1f, the size being entries for `fs ls` and refs, blocks for `fs gc`.\n\n", linearAllowance)
		failed(w, r.StoreErr)
		fmt.Fprintf(w, "| fs blocks (stat) | fs add | fs ls | fs gc |\n|---:|---:|---:|---:|\n")
		var fs, git []StoreResult
		for _, s := range r.Store {
			if s.Kind == "fs" {
				fs = append(fs, s)
				fmt.Fprintf(w, "| %d (%d) | %v | %v | %v |\n", s.Size, s.Blocks, s.Add.Round(time.Millisecond), s.Ls.Round(time.Millisecond), s.GC.Round(time.Millisecond))
			} else {
				git = append(git, s)
			}
		}
		fmt.Fprintf(w, "\n| git refs | ls-remote over alknet | ls-remote on the path |\n|---:|---:|---:|\n")
		for _, s := range git {
			fmt.Fprintf(w, "| %d | %v | %v |\n", s.Size, s.LsRemote.Round(time.Millisecond), s.Local.Round(time.Millisecond))
		}
		fmt.Fprintln(w)
		goals = append(goals, func() {
			entries := func(s StoreResult) int { return s.Size }
			linear(w, "fs-ls-linear", fs, entries, func(s StoreResult) time.Duration { return s.Ls })
			// gc's work is per block: the directory's HAMT shards count.
			linear(w, "fs-gc-linear", fs, func(s StoreResult) int { return s.Blocks }, func(s StoreResult) time.Duration { return s.GC })
			linear(w, "git-ls-remote-linear", git, entries, func(s StoreResult) time.Duration { return s.LsRemote })
		})
	}
	for _, g := range goals {
		g()
	}
	fmt.Fprintln(w)
}

// linear prints a goal line per step from one size to the next: the
// growth of the time t over the growth of the work n. The name carries
// the sizes asked for.
func linear(w io.Writer, name string, rs []StoreResult, n func(StoreResult) int, t func(StoreResult) time.Duration) {
	for i := 1; i < len(rs); i++ {
		a, b := rs[i-1], rs[i]
		if t(a) == 0 || n(a) == 0 {
			continue
		}
		ratio := (float64(t(b)) / float64(t(a))) / (float64(n(b)) / float64(n(a)))
		harness.WriteGoal(w, fmt.Sprintf("%s-%d-to-%d", name, a.Size, b.Size), "loopback", ratio, "<=", linearAllowance)
	}
}

func failed(w io.Writer, err error) {
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
