package harness

import (
	"bufio"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where a benchmark ran.
type Machine struct {
	// CPUs is runtime.NumCPU(); GOMAXPROCS is runtime.GOMAXPROCS(0).
	CPUs, GOMAXPROCS int
	// Model is the first "model name" of /proc/cpuinfo; empty if unknown.
	Model string
	// Kernel is /proc/sys/kernel/osrelease; empty if unknown.
	Kernel string
	// GoVersion is runtime.Version().
	GoVersion string
	// RmemMax and WmemMax are net.core.rmem_max and wmem_max in bytes: the
	// largest UDP buffers an unprivileged SetReadBuffer/SetWriteBuffer gets.
	// -1 if unknown.
	RmemMax, WmemMax int
}

// ReadMachine describes this machine.
func ReadMachine() Machine {
	return Machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		Model:      cpuModel(),
		Kernel:     readTrimmed("/proc/sys/kernel/osrelease"),
		GoVersion:  runtime.Version(),
		RmemMax:    readInt("/proc/sys/net/core/rmem_max"),
		WmemMax:    readInt("/proc/sys/net/core/wmem_max"),
	}
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) int {
	n, err := strconv.Atoi(readTrimmed(path))
	if err != nil {
		return -1
	}
	return n
}

// PortOf returns the port of a "host:port" address, or 0.
func PortOf(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// SocketBuffers are a UDP socket's buffer sizes as getsockopt reports them
// (on Linux, twice the size set, since the kernel counts its bookkeeping).
type SocketBuffers struct {
	// Rcv and Snd are SO_RCVBUF and SO_SNDBUF in bytes.
	Rcv, Snd int
	// Err is why they could not be read; nil when they were.
	Err error
}
