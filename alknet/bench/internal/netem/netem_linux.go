package netem

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/alknet/bench/internal/linkemu"
	"github.com/alkdev/alknet/alknet/bench/internal/netns"
	"golang.org/x/sys/unix"
)

// linkSeq numbers this process's links, so that namespace names are
// unique per run and per link.
var linkSeq atomic.Int64

// A Link is a running emulated path between namespaces A and B. Its
// methods are safe for concurrent use.
type Link struct {
	profile LinkProfile
	ns      [2]*netns.NS

	// The forwarder is a helper process (see linkemu.HelperEnv); ctl
	// serializes the requests to it.
	ctl       sync.Mutex
	helper    *exec.Cmd
	stdin     io.WriteCloser
	stdout    *bufio.Reader
	stderr    lockedBuffer
	last      LinkStats
	helperErr error

	closeOnce sync.Once
	closeErr  error
}

// StartLink creates the two namespaces and their TUN devices, and starts
// forwarding between them as p describes. The forwarder is a process of
// its own at real-time priority, so that neither the Go scheduler of the
// caller's workload nor a busy machine delays the packets: this program
// run again (the package's init turns it into the forwarder), or, in a
// program built with the race detector, cmd/alknet-linkemu built once
// without it (the go command and the repository are needed then);
// $ALKNET_BENCH_LINK_HELPER_BIN names another build of either. It needs
// root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_RAW for Verify's pings),
// /dev/net/tun and the ip command. Namespaces left by an earlier process
// that died without closing its links are removed first (its forwarder
// ends with its input). Close the link to remove everything; ctx bounds
// only the set-up.
func StartLink(ctx context.Context, p LinkProfile) (*Link, error) {
	p, err := p.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("link emulator: %w", err)
	}
	netns.RemoveStale(ctx, LinkNSPrefix)
	l := &Link{profile: p}
	base := fmt.Sprintf("%s%d-%d-", LinkNSPrefix, os.Getpid(), linkSeq.Add(1))
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	for s := range 2 {
		ns, err := netns.Add(ctx, base+Side(s).String())
		if err != nil {
			return nil, fmt.Errorf("link emulator: %w", err)
		}
		l.ns[s] = ns
		// The sockets of the namespace may hold a path's worth of data:
		// a window of one BDP at 300 Mbit/s and 150 ms is 5.6 MB, over
		// the default 4 MB of tcp_wmem.
		if err := l.Do(Side(s), func() error {
			for _, f := range []string{"/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/ipv4/tcp_wmem"} {
				if err := os.WriteFile(f, []byte("4096 131072 33554432"), 0); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("link emulator: %w", err)
		}
	}
	if err := l.startHelper(ctx); err != nil {
		return nil, err
	}
	for s, ns := range l.ns {
		script := fmt.Sprintf("link set dev %[1]s mtu %[2]d txqueuelen 10000 up\n"+
			"addr add %[3]s/32 dev %[1]s\n"+
			"route add %[4]s dev %[1]s src %[3]s\n",
			linkDevice, p.mtu, linkAddr[s], linkPrefix[1-s])
		if err := ns.IP(ctx, script); err != nil {
			return nil, fmt.Errorf("link emulator: configure: %w", err)
		}
	}
	ok = true
	return l, nil
}

// startHelper starts the forwarder process and waits until its devices
// exist.
func (l *Link) startHelper(ctx context.Context) error {
	exe, env, err := linkHelper()
	if err != nil {
		return fmt.Errorf("link emulator: %w", err)
	}
	p := l.profile
	seed := p.seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	c := linkemu.Config{NS: [2]string{l.ns[0].Name(), l.ns[1].Name()}, Device: linkDevice, Delay: p.RTT / 2, Jitter: p.jitter, RateBps: p.RateBps,
		Loss: p.Loss, QueueBytes: p.QueueBytes, QueuePackets: p.queuePackets, MTU: p.mtu, Seed: seed}
	if p.GE != nil {
		ge := linkemu.GilbertElliott(*p.GE)
		c.GE = &ge
	}
	cfg, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("link emulator: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &l.stderr
	if l.stdin, err = cmd.StdinPipe(); err != nil {
		return fmt.Errorf("link emulator: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("link emulator: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("link emulator: start the forwarder: %w", err)
	}
	l.helper, l.stdout = cmd, bufio.NewReader(out)
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	reply, err := l.request(string(cfg))
	if err != nil {
		return err
	}
	if reply != "ready" {
		return fmt.Errorf("link emulator: forwarder: %s", reply)
	}
	return nil
}

var (
	helperOnce sync.Once
	helperBin  string
	helperErr  error
)

// linkHelper returns the forwarder's program and the environment it needs:
// $ALKNET_BENCH_LINK_HELPER_BIN if set; else this program, run again with
// linkemu.HelperEnv, unless it is built with the race detector: then
// cmd/alknet-linkemu, built without it once per process (the binary stays
// in a temporary directory until the machine cleans it).
func linkHelper() (string, []string, error) {
	env := []string{linkemu.HelperEnv + "=1"}
	if bin := os.Getenv("ALKNET_BENCH_LINK_HELPER_BIN"); bin != "" {
		return bin, env, nil
	}
	if !raceEnabled {
		exe, err := os.Executable()
		return exe, env, err
	}
	helperOnce.Do(func() {
		root, err := harness.FindRepoRoot(".")
		if err != nil {
			helperErr = fmt.Errorf("build the forwarder without the race detector: %w", err)
			return
		}
		dir, err := os.MkdirTemp("", "alknet-linkemu-")
		if err != nil {
			helperErr = err
			return
		}
		bin := filepath.Join(dir, "alknet-linkemu")
		cmd := exec.Command("go", "build", "-race=false", "-o", bin, "./cmd/alknet-linkemu")
		cmd.Dir = filepath.Join(root, "alknet", "bench")
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			helperErr = fmt.Errorf("build the forwarder without the race detector: %w: %s", err, bytes.TrimSpace(out))
			return
		}
		helperBin = bin
	})
	return helperBin, env, helperErr
}

// request sends one line to the helper and returns its one-line answer.
func (l *Link) request(line string) (string, error) {
	l.ctl.Lock()
	defer l.ctl.Unlock()
	if l.helperErr != nil {
		return "", l.helperErr
	}
	reply, err := func() (string, error) {
		if _, err := io.WriteString(l.stdin, line+"\n"); err != nil {
			return "", err
		}
		return l.stdout.ReadString('\n')
	}()
	if err != nil {
		l.helperErr = fmt.Errorf("link emulator: the forwarder process failed: %w; its output: %s",
			err, strings.TrimSpace(l.stderr.String()))
		return "", l.helperErr
	}
	return strings.TrimSpace(reply), nil
}

// profile is the link's profile, defaults filled in.
func (l *Link) Profile() LinkProfile { return l.profile }

// Addr is side's address.
func (l *Link) Addr(side Side) netip.Addr { return linkAddr[side] }

// prefix is the prefix side owns and the other side routes to it.
func (l *Link) prefix(side Side) netip.Prefix { return linkPrefix[side] }

// Namespace is the name of side's network namespace, for `ip -n` or
// `ip netns exec`.
func (l *Link) Namespace(side Side) string { return l.ns[side].Name() }

// NS is side's network namespace, for topologies built around the link
// (internal/nat). It stays the link's: Close removes it.
func (l *Link) NS(side Side) *netns.NS { return l.ns[side] }

// Device is the name of the TUN device in each namespace, through which
// the other side's prefix is routed.
func (l *Link) Device() string { return linkDevice }

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
			if !ok || strings.TrimSpace(name) != linkDevice {
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
		return fmt.Errorf("no %s in /proc/net/dev", linkDevice)
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

// Stats counts what the emulator has done so far (after Close, up to
// the last call before it).
func (l *Link) Stats() LinkStats {
	st, _ := l.stats()
	return st
}

func (l *Link) stats() (LinkStats, error) {
	reply, err := l.request("stats")
	if err != nil {
		l.ctl.Lock()
		defer l.ctl.Unlock()
		return l.last, err
	}
	var hs linkemu.Stats
	if err := json.Unmarshal([]byte(reply), &hs); err != nil {
		return LinkStats{}, fmt.Errorf("link emulator: forwarder's stats %q: %w", reply, err)
	}
	st := LinkStats{AToB: DirectionStats(hs.Dirs[0]), BToA: DirectionStats(hs.Dirs[1])}
	for side := range st.UDPRcvbufErrors {
		st.UDPRcvbufErrors[side], _ = l.udpRcvbufErrors(Side(side))
		if out, err := exec.Command("ip", "-n", l.ns[side].Name(), "-j", "-s", "link", "show", "dev", linkDevice).Output(); err == nil {
			st.TxDropped[side], _ = parseTxDropped(out)
		}
	}
	l.ctl.Lock()
	l.last = st
	l.ctl.Unlock()
	if hs.Err != "" {
		return st, fmt.Errorf("link emulator: %s", hs.Err)
	}
	return st, nil
}

// udpRcvbufErrors reads Udp RcvbufErrors from side's /proc/net/snmp
// (through thread-self: /proc/net shows the namespace of the process's
// main thread, not of the thread in side's namespace).
func (l *Link) udpRcvbufErrors(side Side) (int64, error) {
	var snmp []byte
	if err := l.Do(side, func() (err error) {
		snmp, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	}); err != nil {
		return 0, err
	}
	return parseUDPRcvbufErrors(snmp)
}

// err reports a forwarder that failed: its process ended or a direction
// stopped on an error.
func (l *Link) err() error {
	_, err := l.stats()
	return err
}

// suspendLoss turns the loss models off until the returned function is
// called (the verification measures the rate without loss).
func (l *Link) suspendLoss() (restore func()) {
	l.request("loss off")
	return func() { l.request("loss on") }
}

// command returns a command running name with args in side's namespace
// (through `ip netns exec`). Like exec.Command, it is not started yet.
func (l *Link) command(side Side, name string, args ...string) *exec.Cmd {
	return l.commandContext(context.Background(), side, name, args...)
}

// commandContext is Command with a context that kills the command.
func (l *Link) commandContext(ctx context.Context, side Side, name string, args ...string) *exec.Cmd {
	return l.ns[side].Command(ctx, name, args...)
}

// Do runs fn on an OS thread in side's namespace and waits for it. The
// sockets fn creates (net.Listen, net.Dial, ...) stay in that namespace
// and may be used anywhere afterwards; goroutines fn starts do not run
// in it.
func (l *Link) Do(side Side, fn func() error) error {
	if !side.valid() {
		return fmt.Errorf("link emulator: bad side %d", side)
	}
	if l.ns[side] == nil {
		return errors.New("link emulator: link closed")
	}
	if err := l.ns[side].Do(fn); err != nil {
		return fmt.Errorf("link emulator: %w", err)
	}
	return nil
}

// Close stops the forwarder and removes the devices and namespaces.
// Processes still running in a namespace are not killed. It is safe to
// call more than once.
func (l *Link) Close() error {
	l.closeOnce.Do(func() {
		var errs []error
		if l.helper != nil {
			l.ctl.Lock()
			l.stdin.Close() // the forwarder stops at the end of its input
			exited := make(chan error, 1)
			go func() { exited <- l.helper.Wait() }()
			select {
			case err := <-exited:
				if err != nil && l.helperErr == nil {
					errs = append(errs, fmt.Errorf("link emulator: forwarder: %w: %s", err, strings.TrimSpace(l.stderr.String())))
				}
			case <-time.After(5 * time.Second):
				l.helper.Process.Kill()
				<-exited
				errs = append(errs, errors.New("link emulator: the forwarder did not stop within 5s; killed"))
			}
			if l.helperErr == nil {
				l.helperErr = errors.New("link emulator: link closed")
			}
			l.ctl.Unlock()
		}
		for _, ns := range l.ns {
			if ns == nil {
				continue
			}
			if err := ns.Close(); err != nil {
				errs = append(errs, fmt.Errorf("link emulator: %w", err))
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
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

// lockedBuffer is a bytes.Buffer safe for the writes of exec's copying
// goroutine and the reads of error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		return len(p), nil // enough to tell what went wrong
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
