package nat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/netem"
)

// The reach measurement (issue 19 §5): on the NAT topology, the same
// client (site 1's home) and worker (site 0's home) over three paths:
// relayed through the head (--relay-only), direct through a port forward
// on the worker's NAT (so both cross the same namespaces and NATs, and
// differ only by the head's splice), and punched: --via the head, which
// makes a direct path through the two cone NATs. It measures throughput (`alknet perf`, one stream), the
// run time of a short call (the connect cost: a fresh process, handshakes,
// one round trip), and the head's CPU time per relayed Gbit.

// ReachOptions sizes the measurement.
type ReachOptions struct {
	// Bytes is what perf sends each way per run; 0 means 64 MB.
	Bytes int64
	// Runs is how many perf runs and calls each path gets; 0 means 3.
	Runs int
	// Link, if set, puts the client's home across an emulated path of
	// this profile from the head and the worker ([StartAcross]), checked
	// with [netem.Link.Verify] first; nil keeps every link a plain veth.
	Link *netem.LinkProfile
}

// ReachResult is what RunReach measured.
type ReachResult struct {
	// Profile names the path: the link profile, or "ns".
	Profile string
	// Link describes the emulated path ("" without one), and Verify is
	// its self-check: the numbers count only if its Err is nil.
	Link   string
	Verify *netem.VerifyResult
	// Mbps are perf's download and upload rates per run, per path.
	DirectDown, DirectUp, RelayedDown, RelayedUp, PunchedDown, PunchedUp []float64
	// Call are the run times of `alknet call W sys/echo`, per path.
	DirectCall, RelayedCall, PunchedCall []time.Duration
	// HeadCPU is the head's CPU time (user and system) over the relayed
	// perf runs, and RelayedBits the bits those runs moved both ways.
	HeadCPU     time.Duration
	RelayedBits float64
	// DirectCrossing, RelayedCrossing and PunchedCrossing are what the
	// public namespace carried during each path's perf runs: a direct
	// path's bytes are forwarded through it, the relayed path's end at the
	// head.
	DirectCrossing, RelayedCrossing, PunchedCrossing Crossing
}

// CPUPerGbps is the head's CPU cost of relaying: CPU-seconds per Gbit
// relayed, which is also the cores it would keep busy relaying 1 Gbit/s.
func (r ReachResult) CPUPerGbps() float64 {
	if r.RelayedBits == 0 {
		return 0
	}
	return r.HeadCPU.Seconds() / (r.RelayedBits / 1e9)
}

// The goals of the reach measurement: the relay keeps at least half the
// direct throughput, a relayed call takes at most twice a direct one, and
// the head spends at most one core per Gbit/s relayed; a punched path
// keeps 0.9 of the direct throughput, and a call over it, punch included,
// takes no longer than a relayed one (the direct path is up when the
// relayed one would be).
const (
	reachThroughputGoal      = 0.5
	reachConnectGoal         = 2
	reachCPUGoal             = 1
	reachPunchThroughputGoal = 0.9
	reachPunchConnectGoal    = 1
)

// reachProfile names the path in goal lines without an emulated link:
// the namespace topology's veth links.
const reachProfile = "ns"

// RunReach builds a topology and a rig with bin and measures. It needs
// what [Start] needs.
func RunReach(ctx context.Context, bin string, opt ReachOptions) (res ReachResult, err error) {
	if opt.Bytes == 0 {
		opt.Bytes = 64 << 20
	}
	if opt.Runs == 0 {
		opt.Runs = 3
	}
	if opt.Bytes < 0 || opt.Runs < 0 {
		return res, fmt.Errorf("nat: reach: negative bytes %d or runs %d", opt.Bytes, opt.Runs)
	}
	res.Profile = reachProfile
	var top *Topology
	if opt.Link == nil {
		top, err = Start(ctx, Cone, Cone)
	} else {
		res.Profile, res.Link = opt.Link.Name, opt.Link.String()
		var l *netem.Link
		if l, err = netem.StartLink(ctx, *opt.Link); err != nil {
			return res, err
		}
		defer func() { err = errors.Join(err, l.Close()) }()
		v, verr := l.Verify(ctx, netem.VerifyOptions{TCPDuration: 2 * time.Second})
		if verr != nil {
			return res, verr
		}
		res.Verify = &v
		top, err = StartAcross(ctx, l, Cone, Cone)
	}
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, top.Close()) }()
	r, err := StartRig(ctx, bin, top, RigOptions{})
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	_, portText, err := net.SplitHostPort(strings.SplitN(r.WorkerAddr, "@", 2)[1])
	if err != nil {
		return res, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return res, err
	}
	if err := top.Sites[0].Forward(ctx, uint16(port)); err != nil {
		return res, err
	}
	direct := r.WorkerID + "@" + net.JoinHostPort(top.Sites[0].Outer.String(), portText)
	paths := []struct {
		target   string
		extra    []string
		down, up *[]float64
		call     *[]time.Duration
		crossing *Crossing
	}{
		{direct, nil, &res.DirectDown, &res.DirectUp, &res.DirectCall, &res.DirectCrossing},
		{r.WorkerID, r.Via(), &res.RelayedDown, &res.RelayedUp, &res.RelayedCall, &res.RelayedCrossing},
		{r.WorkerID, r.ViaPunch(), &res.PunchedDown, &res.PunchedUp, &res.PunchedCall, &res.PunchedCrossing},
	}
	timeout := time.Minute + time.Duration(opt.Bytes/(1<<20))*time.Second
	for run := range opt.Runs {
		for i, p := range paths {
			cpu0, err := processCPU(r.Head.Cmd.Process.Pid)
			if err != nil {
				return res, err
			}
			cross0, err := top.Crossing(ctx)
			if err != nil {
				return res, err
			}
			args := append([]string{"perf", p.target, "--bytes", strconv.FormatInt(opt.Bytes, 10), "--streams", "1", "--json"}, p.extra...)
			out, err := r.Alknet(ctx, timeout, "", args...)
			if err != nil {
				return res, fmt.Errorf("nat: reach: perf run %d: %w", run, err)
			}
			cpu1, err := processCPU(r.Head.Cmd.Process.Pid)
			if err != nil {
				return res, err
			}
			cross1, err := top.Crossing(ctx)
			if err != nil {
				return res, err
			}
			p.crossing.Forwarded += cross1.Forwarded - cross0.Forwarded
			p.crossing.Local += cross1.Local - cross0.Local
			var pr struct {
				Upload, Download struct {
					Bytes int64   `json:"bytes"`
					Mbps  float64 `json:"mbps"`
				}
			}
			if err := json.Unmarshal(out, &pr); err != nil {
				return res, fmt.Errorf("nat: reach: perf's JSON %q: %w", out, err)
			}
			*p.down, *p.up = append(*p.down, pr.Download.Mbps), append(*p.up, pr.Upload.Mbps)
			if i == 1 { // relayed
				res.HeadCPU += cpu1 - cpu0
				res.RelayedBits += float64(pr.Upload.Bytes+pr.Download.Bytes) * 8
			}

			start := time.Now()
			if out, err := r.Alknet(ctx, 0, "", append([]string{"call", p.target, "sys/echo", `{"message":"x"}`}, p.extra...)...); err != nil {
				return res, fmt.Errorf("nat: reach: call: %w\n%s", err, out)
			}
			*p.call = append(*p.call, time.Since(start))
		}
	}
	return res, nil
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat's CPU
// times: 100 on every Linux architecture Go supports.
const clockTicks = 100

// processCPU is pid's user and system CPU time so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses;
	// utime and stime are the 14th and 15th fields, the 12th and 13th
	// after comm.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// WriteReachMarkdown prints the measurement and, last, its goal lines
// (for profile ns, or the link's): `goal reach-relay-throughput ns ratio <relayed/direct download> target
// >=0.5`, `goal reach-relay-connect ns ratio <relayed/direct call time>
// target <=2` and `goal reach-relay-cpu ns ratio <head CPU-seconds per
// Gbit> target <=1`.
func WriteReachMarkdown(w io.Writer, r ReachResult, err error) {
	fmt.Fprintf(w, "## Reach: relayed vs direct through NATs (%s)\n\n", r.Profile)
	if err != nil {
		fmt.Fprintf(w, "**Failed:** %v\n\n", err)
		if len(r.RelayedDown) == 0 || len(r.DirectDown) == 0 {
			return
		}
	}
	fmt.Fprintf(w, "A client behind one NAT and a worker behind another (network namespaces, veth links, nftables masquerade), "+
		"relayed through a head in the public namespace or direct through a port forward on the worker's NAT. "+
		"`alknet perf` one stream, Mbit/s; `alknet call W sys/echo` run time, process start to exit. Median (min–max) of %d runs.\n\n", len(r.DirectDown))
	if r.Verify != nil {
		fmt.Fprintf(w, "The client's home is across an emulated %s path (%v) from the head and the worker, which are near each other; "+
			"the link's self-check: RTT %v, TCP %.0f Mbit/s", r.Profile, r.Link, r.Verify.RTT.Round(100*time.Microsecond), r.Verify.TCPBps/1e6)
		if verr := r.Verify.Err(); verr != nil {
			fmt.Fprintf(w, ": **%v; the numbers below do not count**", verr)
		}
		fmt.Fprintf(w, ".\n\n")
	}
	fmt.Fprintf(w, "| path | download | upload | call |\n|---|---:|---:|---:|\n")
	row := func(name string, down, up []float64, call []time.Duration) {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", name, mbps(down), mbps(up), durations(call))
	}
	row("direct", r.DirectDown, r.DirectUp, r.DirectCall)
	row("relayed", r.RelayedDown, r.RelayedUp, r.RelayedCall)
	if len(r.PunchedDown) > 0 {
		row("punched (via the head, then direct)", r.PunchedDown, r.PunchedUp, r.PunchedCall)
	}
	fmt.Fprintf(w, "\nThe head's CPU time while relaying: %.2f s for %.2f Gbit, %.3f CPU-seconds per Gbit (cores busy at 1 Gbit/s).\n\n",
		r.HeadCPU.Seconds(), r.RelayedBits/1e9, r.CPUPerGbps())
	harness.WriteGoal(w, "reach-relay-throughput", r.Profile,
		harness.Ratio(harness.Summarize(r.RelayedDown), harness.Summarize(r.DirectDown)), ">=", reachThroughputGoal)
	harness.WriteGoal(w, "reach-relay-connect", r.Profile,
		harness.Ratio(seconds(r.RelayedCall), seconds(r.DirectCall)), "<=", reachConnectGoal)
	harness.WriteGoal(w, "reach-relay-cpu", r.Profile, r.CPUPerGbps(), "<=", reachCPUGoal)
	if len(r.PunchedDown) > 0 {
		harness.WriteGoal(w, "reach-punch-throughput", r.Profile,
			harness.Ratio(harness.Summarize(r.PunchedDown), harness.Summarize(r.DirectDown)), ">=", reachPunchThroughputGoal)
		harness.WriteGoal(w, "reach-punch-connect", r.Profile,
			harness.Ratio(seconds(r.PunchedCall), seconds(r.RelayedCall)), "<=", reachPunchConnectGoal)
	}
	fmt.Fprintln(w)
}

func mbps(v []float64) string {
	s := harness.Summarize(v)
	return fmt.Sprintf("%.0f (%.0f–%.0f)", s.Median, s.Min, s.Max)
}

func seconds(d []time.Duration) harness.Stats {
	v := make([]float64, len(d))
	for i, x := range d {
		v[i] = x.Seconds()
	}
	return harness.Summarize(v)
}

func durations(d []time.Duration) string {
	s := seconds(d)
	return fmt.Sprintf("%.0f ms (%.0f–%.0f)", 1000*s.Median, 1000*s.Min, 1000*s.Max)
}
