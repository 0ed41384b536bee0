package linkemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// HelperEnv, set to 1 in a process's environment, makes this package's
// init run Main instead of the program: netem's StartLink starts the
// forwarder by running its own program again (or cmd/alknet-linkemu).
//
// The forwarder runs in a process of its own: in the workload's process
// it would share the Go scheduler with the workload it carries (an
// in-process quic-go sender can keep every P busy for milliseconds, and
// a packet due for release would wait); as a process of its own, raised
// in priority, it has the kernel's scheduler between it and the
// workload, as a network has.
const HelperEnv = "ALKNET_BENCH_LINK_HELPER"

func init() {
	if os.Getenv(HelperEnv) == "1" {
		os.Exit(Main(os.Stdin, os.Stdout))
	}
}

// Stats is the answer to the "stats" request.
type Stats struct {
	Dirs [2]DirectionStats // A to B, B to A
	Err  string            // a direction stopped on this error
}

// Main is the forwarder process's main. Protocol: the parent writes one
// JSON Config line on in; Main opens the TUN devices and answers "ready"
// (or "error: ..." and returns 1). Then each line the parent writes gets
// one line back: "stats" a JSON Stats, "loss on" and "loss off" "ok".
// End of input stops the forwarder.
func Main(in io.Reader, out io.Writer) int {
	raisePriority()
	r := bufio.NewReader(in)
	line, err := r.ReadBytes('\n')
	if err != nil {
		fmt.Fprintf(out, "error: reading the configuration: %v\n", err)
		return 1
	}
	var cfg Config
	if err := json.Unmarshal(line, &cfg); err != nil {
		fmt.Fprintf(out, "error: configuration: %v\n", err)
		return 1
	}
	f, err := startForwarder(cfg)
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return 1
	}
	defer f.close()
	fmt.Fprintln(out, "ready")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0 // the parent closed the link, or died
		}
		switch strings.TrimSpace(line) {
		case "stats":
			st := Stats{Dirs: [2]DirectionStats{f.dirs[0].snapshot(), f.dirs[1].snapshot()}}
			if err := f.err(); err != nil {
				st.Err = err.Error()
			}
			b, _ := json.Marshal(st)
			fmt.Fprintf(out, "%s\n", b)
		case "loss on":
			f.noLoss.Store(false)
			fmt.Fprintln(out, "ok")
		case "loss off":
			f.noLoss.Store(true)
			fmt.Fprintln(out, "ok")
		default:
			fmt.Fprintf(out, "error: unknown command %q\n", strings.TrimSpace(line))
		}
	}
}

// raisePriority puts every thread of the process in the real-time class
// (SCHED_FIFO at its lowest priority), or where that is refused gives
// it nice -10 (best effort), so that the network does not wait behind
// the workload, or anything else, on a busy machine: it sleeps most of
// the time and must run when a packet is due. The kernel keeps 5 % of
// the CPU for the other classes whatever a real-time thread does. Linux
// sets these per thread; threads created later inherit them from the
// thread that creates them.
func raisePriority() {
	for range 2 { // a second pass catches threads started during the first
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_FIFO, Priority: 1}, 0) != nil {
				_ = unix.Setpriority(unix.PRIO_PROCESS, tid, -10)
			}
		}
	}
}

// forwarder moves packets between the two TUN devices, one direction
// each way.
type forwarder struct {
	ns     [2]string
	tun    [2]*os.File
	dirs   [2]*direction // A to B, B to A
	epoch  time.Time
	mono   int64 // CLOCK_MONOTONIC at epoch, ns
	noLoss atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup
}

func startForwarder(cfg Config) (*forwarder, error) {
	p := cfg
	f := &forwarder{ns: cfg.NS, epoch: time.Now(), done: make(chan struct{})}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, err
	}
	f.mono = ts.Nano()
	ok := false
	defer func() {
		if !ok {
			f.close()
		}
	}()
	for s := range 2 {
		t, err := openTUN(cfg.NS[s], cfg.Device)
		if err != nil {
			return nil, err
		}
		f.tun[s] = t
	}
	// Enough buffers for the packets in flight at full rate (one-way
	// delay plus a full queue) at 200 bytes a packet on average; the
	// Overflow counter tells when that was too few. The slab's pages are
	// only touched as packets fill them.
	slots := 4096
	if p.RateBps > 0 {
		inFlight := float64(p.RateBps)/8*p.Delay.Seconds() + float64(p.QueueBytes)
		slots = min(max(slots, int(inFlight/200)), 1<<16)
	}
	for s := range 2 {
		d := &direction{in: f.tun[s], out: f.tun[1-s], sh: newShaper(p, cfg.Seed+uint64(s)), mtu: p.MTU,
			free: make(chan *packet, slots), line: make(chan *packet, slots)}
		slab, size := make([]byte, slots*(p.MTU+1)), p.MTU+1 // +1 tells an oversized packet
		for i := range slots {
			d.free <- &packet{buf: slab[i*size : (i+1)*size : (i+1)*size]}
		}
		tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("timerfd: %w", err)
		}
		d.timer = os.NewFile(uintptr(tfd), "timerfd")
		f.dirs[s] = d
	}
	for _, d := range f.dirs {
		f.wg.Add(2)
		go func() { defer f.wg.Done(); d.read(f) }()
		go func() { defer f.wg.Done(); d.write(f.done, f.epoch, f.mono) }()
	}
	ok = true
	return f, nil
}

// openTUN creates the TUN device in namespace ns, from a thread that
// enters ns and ends with it. The device lives until its descriptor is
// closed.
func openTUN(ns, device string) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves with the goroutine
		f, err := func() (*os.File, error) {
			nsFD, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, err
			}
			defer unix.Close(nsFD)
			if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
				return nil, fmt.Errorf("enter %s: %w", ns, err)
			}
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
			if err != nil {
				return nil, err
			}
			ifr, err := unix.NewIfreq(device)
			if err != nil {
				unix.Close(fd)
				return nil, err
			}
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("TUNSETIFF in %s: %w", ns, err)
			}
			// A non-blocking descriptor is served by the runtime's
			// poller, so Close ends a pending Read.
			return os.NewFile(uintptr(fd), "/dev/net/tun:"+ns), nil
		}()
		ch <- result{f, err}
	}()
	r := <-ch
	return r.f, r.err
}

func (f *forwarder) err() error {
	var errs []error
	for s, d := range f.dirs {
		if d == nil {
			continue
		}
		if e := d.err.Load(); e != nil {
			errs = append(errs, fmt.Errorf("forwarding from %s: %w", f.ns[s], *e))
		}
	}
	return errors.Join(errs...)
}

// close stops the goroutines and closes the devices, which removes them.
func (f *forwarder) close() {
	close(f.done)
	for _, t := range f.tun {
		if t != nil {
			t.Close()
		}
	}
	for _, d := range f.dirs {
		if d != nil {
			d.timer.Close()
		}
	}
	f.wg.Wait()
}

// direction forwards packets from one TUN device to the other.
type direction struct {
	in, out *os.File
	sh      *shaper
	timer   *os.File // a non-blocking timerfd on CLOCK_MONOTONIC
	mtu     int
	free    chan *packet // buffers not in the delay line
	line    chan *packet // admitted packets, in release order
	stats   [11]atomic.Int64
	err     atomic.Pointer[error]
}

// Indexes of direction.stats, in DirectionStats order.
const (
	stRead = iota
	stPassed
	stBytes
	stLost
	stBurst
	stQueue
	stTooBig
	stOverflow
	stWriteErr
	stLateSum // ns packets left after their release time, summed
	stLateMax
)

type packet struct {
	buf     []byte
	n       int
	release int64
}

// read takes packets from the device, decides their fate and queues the
// admitted ones on the delay line.
func (d *direction) read(f *forwarder) {
	scratch := make([]byte, d.mtu+1)
	for {
		var p *packet
		select {
		case p = <-d.free:
		default:
		}
		buf := scratch
		if p != nil {
			buf = p.buf
		}
		n, err := d.in.Read(buf)
		if err != nil {
			if p != nil {
				d.free <- p
			}
			if !errors.Is(err, os.ErrClosed) {
				d.err.Store(&err)
			}
			return
		}
		d.stats[stRead].Add(1)
		switch {
		case n > d.mtu:
			d.stats[stTooBig].Add(1)
		case p == nil:
			d.stats[stOverflow].Add(1)
		default:
			release, cause := d.sh.admit(int64(time.Since(f.epoch)), n, f.noLoss.Load())
			switch cause {
			case dropNone:
				p.n, p.release = n, release
				d.line <- p // never blocks: line and free share the packets
				continue
			case dropLoss:
				d.stats[stLost].Add(1)
			case dropBurst:
				d.stats[stBurst].Add(1)
			case dropQueue:
				d.stats[stQueue].Add(1)
			}
		}
		if p != nil {
			d.free <- p
		}
	}
}

// The writer's timing: a packet is written up to writeEarly before its
// release time (the write and the wake-up of the reader on the other side
// take about as long). The writer waits on a timerfd, through the
// runtime's poller, until writeFinal before the release, then sleeps the
// rest in nanosleep: the runtime's own timers wake up to a millisecond
// late, and a thread sleeping in nanosleep keeps its P, so two writers in
// long sleeps would hold both Ps of a 2-core machine and starve the
// poller.
const (
	writeEarly = int64(20 * time.Microsecond)
	writeFinal = int64(300 * time.Microsecond)
)

// write releases the packets of the delay line to the other device at
// their time, waiting on timer (a timerfd on CLOCK_MONOTONIC, whose
// reading at epoch was mono).
func (d *direction) write(done <-chan struct{}, epoch time.Time, mono int64) {
	timer, err := d.timer.SyscallConn()
	if err != nil {
		d.err.Store(&err)
		return
	}
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	var tick [8]byte
	for {
		var p *packet
		select {
		case p = <-d.line:
		case <-done:
			return
		}
		for {
			wait := p.release - int64(time.Since(epoch))
			if wait <= writeEarly {
				break
			}
			if wait > 2*writeFinal {
				its := unix.ItimerSpec{Value: unix.NsecToTimespec(mono + p.release - writeFinal)}
				var serr error
				if err := timer.Control(func(fd uintptr) {
					serr = unix.TimerfdSettime(int(fd), unix.TFD_TIMER_ABSTIME, &its, nil)
				}); err != nil {
					return // closed
				}
				if serr != nil {
					d.err.Store(&serr)
					return
				}
				if _, err := d.timer.Read(tick[:]); err != nil {
					return // closed
				}
				continue
			}
			ts := unix.NsecToTimespec(wait - writeEarly)
			_ = unix.Nanosleep(&ts, nil)
		}
		late := int64(time.Since(epoch)) - p.release
		d.stats[stLateSum].Add(late)
		if late > d.stats[stLateMax].Load() {
			d.stats[stLateMax].Store(late)
		}
		if _, err := d.out.Write(p.buf[:p.n]); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			d.stats[stWriteErr].Add(1)
		} else {
			d.stats[stPassed].Add(1)
			d.stats[stBytes].Add(int64(p.n))
		}
		d.free <- p
	}
}

func (d *direction) snapshot() DirectionStats {
	v := func(i int) int64 { return d.stats[i].Load() }
	return DirectionStats{Read: v(stRead), Passed: v(stPassed), Bytes: v(stBytes), Lost: v(stLost),
		BurstLost: v(stBurst), Queue: v(stQueue), TooBig: v(stTooBig), Overflow: v(stOverflow),
		WriteErrors: v(stWriteErr), LateSum: time.Duration(v(stLateSum)), LateMax: time.Duration(v(stLateMax))}
}
