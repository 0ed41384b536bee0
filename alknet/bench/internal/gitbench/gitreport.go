package gitbench

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// WriteMarkdown prints the report as Markdown: the set-up, each server's
// wall time and peak memory per operation (median (min–max) over the
// rounds), then alknet's ratios to git daemon with the goals. err, if not
// nil, is printed as the failure that ended the comparison.
func (r *GitReport) WriteMarkdown(w io.Writer, err error) {
	cfg := r.config
	fmt.Fprintf(w, "## git hosting against git daemon\n\n")
	fmt.Fprintf(w, "Repository: %d commits on main, %.1f MB of packed objects. %d interleaved rounds; "+
		"push: a new branch of %d commits. Wall time: the client git command from start to exit, median (min–max). "+
		"Memory: the server's exact peak (alknet: the node's VmHWM reset before each command, which leaves out "+
		"the git processes of the exec backend; git daemon: "+
		"`/usr/bin/time` maximum RSS of the daemon and its children, daemon restarted per command) and the "+
		"peak of the server's summed process-tree RSS, sampled every %v.\n\n",
		r.commits, float64(r.packBytes)/1e6, cfg.Runs, cfg.pushCommits, treeSampleEvery)
	if cfg.AlknetConfig != "" {
		fmt.Fprintf(w, "alknet's config adds:\n\n```toml\n%s\n```\n\n", strings.TrimSpace(cfg.AlknetConfig))
	}
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
	}
	fmt.Fprintf(w, "| operation | server | wall time | peak memory | peak process-tree memory |\n|---|---|---:|---:|---:|\n")
	for _, op := range cfg.Ops {
		for _, s := range cfg.servers {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", op, s,
				statsString(r.wall(s, op), formatSeconds), statsString(r.peak(s, op), formatMB), statsString(r.treePeak(s, op), formatMB))
		}
	}
	fmt.Fprintf(w, "\nalknet / git daemon: median of the per-round ratios (min–max) of wall time, then the ratios of the medians:\n\n")
	fmt.Fprintf(w, "| operation | time, per round (goal ≤ 1.5) | time, medians | peak memory (goal ≤ 2) | process-tree memory |\n|---|---:|---:|---:|---:|\n")
	for _, op := range cfg.Ops {
		p := r.pairedWallRatio(gitAlknet, gitDaemon, op)
		paired := "–"
		if p.N > 0 {
			paired = fmt.Sprintf("%.2f (%.2f–%.2f)", p.Median, p.Min, p.Max)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", op, paired,
			medianRatio(r.wall(gitAlknet, op), r.wall(gitDaemon, op)),
			medianRatio(r.peak(gitAlknet, op), r.peak(gitDaemon, op)),
			medianRatio(r.treePeak(gitAlknet, op), r.treePeak(gitDaemon, op)))
	}
	fmt.Fprintln(w)
	// Last, one line per goal: time per round and process-tree memory
	// (which counts the exec backend's git processes) against git daemon.
	for _, op := range cfg.Ops {
		name := "git-" + gitOpNames[op]
		if p := r.pairedWallRatio(gitAlknet, gitDaemon, op); p.N > 0 {
			harness.WriteGoal(w, name+"-time", "loopback", p.Median, "<=", 1.5)
		}
		if a, b := r.treePeak(gitAlknet, op), r.treePeak(gitDaemon, op); a.N > 0 && b.N > 0 && b.Median > 0 {
			harness.WriteGoal(w, name+"-memory", "loopback", harness.Ratio(a, b), "<=", 2)
		}
	}
}

// statsString prints s as "median (min–max)" with format, or "–".
func statsString(s harness.Stats, format func(float64) string) string {
	if s.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s–%s)", format(s.Median), format(s.Min), format(s.Max))
}

// medianRatio prints the ratio of the medians of a and b, or "–".
func medianRatio(a, b harness.Stats) string {
	if a.N == 0 || b.N == 0 || b.Median == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", harness.Ratio(a, b))
}

func formatSeconds(v float64) string {
	d := time.Duration(v * float64(time.Second))
	if d >= time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

func formatMB(v float64) string { return fmt.Sprintf("%.1f MB", v/1e6) }
