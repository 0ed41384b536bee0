package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// linkSeq numbers this process's links, so that namespace names are
// unique per run and per link.
var linkSeq atomic.Int64

// A Link is a running emulated path between namespaces A and B. Its
// methods are safe for concurrent use.
type Link struct {
	profile LinkProfile
	ns      [2]string
	nsFD    [2]int
	tun     [2]*os.File
	dirs    [2]*direction // AToB, BToA
	epoch   time.Time
	mono    int64 // CLOCK_MONOTONIC at epoch, ns
	noLoss  atomic.Bool
	done    chan struct{}
	mu      sync.RWMutex // guards nsFD against Close while Do runs
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
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

// StartLink creates the two namespaces and their TUN devices, and starts
// forwarding between them as p describes. It needs root (CAP_SYS_ADMIN
// and CAP_NET_ADMIN), /dev/net/tun and the ip command. Namespaces left
// by an earlier process that died without closing its links are removed
// first. Close the link to remove everything; ctx bounds only the set-up.
func StartLink(ctx context.Context, p LinkProfile) (*Link, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("link emulator: %w", err)
	}
	removeStaleNamespaces(ctx)
	l := &Link{profile: p, nsFD: [2]int{-1, -1}, epoch: time.Now(), done: make(chan struct{})}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return nil, fmt.Errorf("link emulator: %w", err)
	}
	l.mono = ts.Nano()
	base := fmt.Sprintf("%s%d-%d-", linkNSPrefix, os.Getpid(), linkSeq.Add(1))
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	for s := range 2 {
		name := base + Side(s).String()
		if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("link emulator: ip netns add %s: %w: %s", name, err, bytes.TrimSpace(out))
		}
		l.ns[s] = name
		fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("link emulator: open namespace %s: %w", name, err)
		}
		l.nsFD[s] = fd
		if err := l.Do(Side(s), func() error { return l.openTUN(Side(s)) }); err != nil {
			return nil, err
		}
		other := 1 - s
		script := fmt.Sprintf("link set dev lo up\n"+
			"link set dev %[1]s mtu %[2]d txqueuelen 10000 up\n"+
			"addr add %[3]s/32 dev %[1]s\n"+
			"route add %[4]s dev %[1]s src %[3]s\n",
			LinkDevice, p.MTU, linkAddr[s], linkPrefix[other])
		cmd := exec.CommandContext(ctx, "ip", "-n", name, "-batch", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("link emulator: configure %s: %w: %s", name, err, bytes.TrimSpace(out))
		}
	}
	seed := p.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	// Enough buffers for the packets in flight at full rate (one-way
	// delay plus a full queue) at 500 bytes a packet on average; the
	// Overflow counter tells when that was too few.
	slots := 1024
	if p.RateBps > 0 {
		inFlight := float64(p.RateBps)/8*p.RTT.Seconds()/2 + float64(p.QueueBytes)
		slots = min(max(slots, int(inFlight/500)), 1<<16)
	}
	for s := range 2 {
		d := &direction{in: l.tun[s], out: l.tun[1-s], sh: newShaper(p, seed+uint64(s)), mtu: p.MTU,
			free: make(chan *packet, slots), line: make(chan *packet, slots)}
		// One slab: its pages are only touched as packets fill them.
		slab, size := make([]byte, slots*(p.MTU+1)), p.MTU+1 // +1 tells an oversized packet
		for i := range slots {
			d.free <- &packet{buf: slab[i*size : (i+1)*size : (i+1)*size]}
		}
		tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("link emulator: timerfd: %w", err)
		}
		d.timer = os.NewFile(uintptr(tfd), "timerfd")
		l.dirs[s] = d
	}
	for _, d := range l.dirs {
		l.wg.Add(2)
		go func() { defer l.wg.Done(); d.read(l) }()
		go func() { defer l.wg.Done(); d.write(l.done, l.epoch, l.mono) }()
	}
	ok = true
	return l, nil
}

// openTUN creates side's TUN device in the calling thread's namespace.
func (l *Link) openTUN(side Side) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("link emulator: %w", err)
	}
	ifr, err := unix.NewIfreq(LinkDevice)
	if err != nil {
		unix.Close(fd)
		return err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return fmt.Errorf("link emulator: TUNSETIFF: %w", err)
	}
	// The sockets of the namespace may hold a path's worth of data: a
	// window of one BDP at 300 Mbit/s and 150 ms is 5.6 MB, over the
	// default 4 MB of tcp_wmem.
	for _, f := range []string{"/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/ipv4/tcp_wmem"} {
		if err := os.WriteFile(f, []byte("4096 131072 33554432"), 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("link emulator: %w", err)
		}
	}
	// A non-blocking descriptor is served by the runtime's poller, so
	// Close ends a pending Read.
	l.tun[side] = os.NewFile(uintptr(fd), "/dev/net/tun:"+l.ns[side])
	return nil
}

// read takes packets from the device, decides their fate and queues the
// admitted ones on the delay line.
func (d *direction) read(l *Link) {
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
			release, cause := d.sh.admit(int64(time.Since(l.epoch)), n, l.noLoss.Load())
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

// Profile is the link's profile, defaults filled in.
func (l *Link) Profile() LinkProfile { return l.profile }

// Addr is side's address.
func (l *Link) Addr(side Side) netip.Addr { return linkAddr[side] }

// Prefix is the prefix side owns and the other side routes to it.
func (l *Link) Prefix(side Side) netip.Prefix { return linkPrefix[side] }

// Namespace is the name of side's network namespace, for `ip -n` or
// `ip netns exec`.
func (l *Link) Namespace(side Side) string { return l.ns[side] }

// devicePackets is how many packets side's TUN device has received (from
// the emulator) and transmitted (to it), as the kernel of that namespace
// counts them.
func (l *Link) devicePackets(side Side) (rx, tx int64, err error) {
	err = l.Do(side, func() error {
		b, err := os.ReadFile("/proc/thread-self/net/dev")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			name, counters, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(name) != LinkDevice {
				continue
			}
			f := strings.Fields(counters)
			if len(f) < 10 {
				break
			}
			if rx, err = strconv.ParseInt(f[1], 10, 64); err == nil {
				tx, err = strconv.ParseInt(f[9], 10, 64)
			}
			return err
		}
		return fmt.Errorf("no %s in /proc/net/dev", LinkDevice)
	})
	return rx, tx, err
}

// CongestionControl is the TCP congestion control the namespaces use
// (a new namespace inherits the host's), or "" if it cannot be read.
func (l *Link) CongestionControl() string {
	var cc []byte
	if err := l.Do(SideA, func() (err error) {
		cc, err = os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
		return err
	}); err != nil {
		return ""
	}
	return strings.TrimSpace(string(cc))
}

// Stats counts what the emulator has done so far.
func (l *Link) Stats() LinkStats {
	if l.dirs[0] == nil {
		return LinkStats{}
	}
	return LinkStats{AToB: l.dirs[0].snapshot(), BToA: l.dirs[1].snapshot()}
}

// Err reports a forwarder that stopped on an error other than Close.
func (l *Link) Err() error {
	var errs []error
	for s, d := range l.dirs {
		if d == nil {
			continue
		}
		if e := d.err.Load(); e != nil {
			errs = append(errs, fmt.Errorf("link emulator: reading %s: %w", l.ns[s], *e))
		}
	}
	return errors.Join(errs...)
}

// suspendLoss turns the loss models off until the returned function is
// called (the verification measures the rate without loss).
func (l *Link) suspendLoss() (restore func()) {
	l.noLoss.Store(true)
	return func() { l.noLoss.Store(false) }
}

// Command returns a command running name with args in side's namespace
// (through `ip netns exec`). Like exec.Command, it is not started yet.
func (l *Link) Command(side Side, name string, args ...string) *exec.Cmd {
	return l.CommandContext(context.Background(), side, name, args...)
}

// CommandContext is Command with a context that kills the command.
func (l *Link) CommandContext(ctx context.Context, side Side, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.ns[side], name}, args...)...)
}

// Do runs fn on an OS thread in side's namespace and waits for it. The
// sockets fn creates (net.Listen, net.Dial, ...) stay in that namespace
// and may be used anywhere afterwards; goroutines fn starts do not run
// in it.
func (l *Link) Do(side Side, fn func() error) error {
	if !side.valid() {
		return fmt.Errorf("link emulator: bad side %d", side)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.nsFD[side] < 0 {
		return errors.New("link emulator: link closed")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("link emulator: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(l.nsFD[side], unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("link emulator: enter %s: %w", l.ns[side], err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and ends with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("link emulator: leave %s: %w", l.ns[side], err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Close stops the forwarders and removes the devices and namespaces.
// Processes still running in a namespace are not killed. It is safe to
// call more than once.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		var errs []error
		for _, f := range l.tun {
			if f != nil {
				errs = append(errs, f.Close())
			}
		}
		for _, d := range l.dirs {
			if d != nil {
				errs = append(errs, d.timer.Close())
			}
		}
		l.wg.Wait()
		l.mu.Lock()
		defer l.mu.Unlock()
		for s, name := range l.ns {
			if l.nsFD[s] >= 0 {
				unix.Close(l.nsFD[s])
				l.nsFD[s] = -1
			}
			if name == "" {
				continue
			}
			if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("link emulator: ip netns del %s: %w: %s", name, err, bytes.TrimSpace(out)))
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// removeStaleNamespaces deletes the emulator's namespaces whose creating
// process no longer runs (it crashed or was killed before Close).
func removeStaleNamespaces(ctx context.Context) {
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), linkNSPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() || unix.Kill(pid, 0) != unix.ESRCH {
			continue
		}
		_ = exec.CommandContext(ctx, "ip", "netns", "del", e.Name()).Run()
	}
}

// tcpBytesReceived is the payload the kernel has received in order on c,
// read or not (TCP_INFO's tcpi_bytes_received): a receiver that falls
// behind does not bend the measured rate.
func tcpBytesReceived(c net.Conn) (int64, error) {
	info, err := tcpInfo(c)
	if err != nil {
		return 0, err
	}
	return int64(info.Bytes_received), nil
}

// tcpQuiet reports whether the sender c has no loss to recover from: its
// congestion state is Open and nothing is SACKed, lost or retransmitted,
// so the receiver holds no data out of order, waiting for a hole to fill.
func tcpQuiet(c net.Conn) (bool, error) {
	info, err := tcpInfo(c)
	if err != nil {
		return false, err
	}
	return info.Ca_state == 0 && info.Sacked == 0 && info.Lost == 0 && info.Retrans == 0, nil
}

func tcpInfo(c net.Conn) (*unix.TCPInfo, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil, fmt.Errorf("not a TCP connection: %T", c)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil {
		return nil, err
	}
	return info, ierr
}
