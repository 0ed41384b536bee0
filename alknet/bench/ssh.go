package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// SSHTest is one measurement of the SSH comparison.
type SSHTest string

// The SSH tests.
const (
	// Tunnel is iperf3 throughput through a local port forward (-L), in
	// Mbit/s received.
	Tunnel SSHTest = "tunnel"
	// SOCKS is the median latency of a small HTTP GET on a new connection
	// through a SOCKS5 proxy (and directly, the baseline), in seconds.
	SOCKS SSHTest = "socks"
	// SFTPGet and SFTPPut are stock sftp downloading and uploading one file,
	// in MB/s (10^6 bytes) over the sftp process's run time.
	SFTPGet SSHTest = "sftp-get"
	SFTPPut SSHTest = "sftp-put"
	// Setup is the median time of a stock `ssh HOST true`, from process
	// start to exit, in seconds.
	Setup SSHTest = "setup"
)

// SSHTests returns every test, in the order CompareSSH runs them.
func SSHTests() []SSHTest { return []SSHTest{Tunnel, SOCKS, SFTPGet, SFTPPut, Setup} }

// ParseSSHTest returns the test named s.
func ParseSSHTest(s string) (SSHTest, error) {
	for _, t := range SSHTests() {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("bench: unknown ssh test %q (want one of %v)", s, SSHTests())
}

// Variant names of the SSH comparison. A cipher suffix names the SSH cipher
// the stock client was pinned to.
const (
	// VariantAlknet is alknet's own client over QUIC: `alknet forward -L`,
	// `alknet socks`, `alknet ssh HOST true`; for SFTP, stock sftp on
	// alknet/sftp through `alknet pipe` (raw SFTP, no SSH underneath).
	VariantAlknet = "alknet"
	// VariantAlknetTCP is VariantAlknet with `--network tcp`: alknet over
	// TCP+TLS instead of QUIC.
	VariantAlknetTCP = "alknet-tcp"
	// VariantAlknetSSH is `alknet forward --forward-protocol ssh`: the SSH
	// channels of alknet/ssh over QUIC, as before alknet/fwd.
	VariantAlknetSSH = "alknet-ssh"
	// VariantBareQUIC is -L over bare quic-go, one stream per forwarded
	// connection, in the bench process (bareForward): the QUIC ceiling.
	VariantBareQUIC = "bare-quic"
	// VariantPipe is stock ssh to the node through
	// `alknet pipe --alpn alknet/ssh` as its ProxyCommand.
	VariantPipe = "pipe"
	// VariantOpenSSH is stock ssh (or sftp) to sshd over TCP.
	VariantOpenSSH = "openssh"
	// VariantDirect is the SOCKS test's baseline: the GET without a proxy.
	VariantDirect = "direct"
	// VariantAlknetStart is the Setup test's `alknet id` on the client's
	// data directory: starting the binary and opening its vault, which every
	// `alknet pipe` pays before it dials.
	VariantAlknetStart = "alknet-start"
)

// WithCipher returns "variant/cipher" with the cipher's short name
// (aes128-gcm, chacha20-poly1305).
func WithCipher(variant, cipher string) string {
	return variant + "/" + strings.TrimSuffix(cipher, "@openssh.com")
}

// SSHConfig configures [CompareSSH]. Zero fields take the defaults.
type SSHConfig struct {
	// Binary is the alknet executable; required.
	Binary string
	// Tests to run; nil means all.
	Tests []SSHTest
	// Runs is the number of interleaved rounds; default 3.
	Runs int
	// IperfTime is the length of each iperf3 run, whole seconds; default 5s.
	IperfTime time.Duration
	// IperfBytes, if set, makes each iperf3 run send that many bytes
	// instead of running for IperfTime (for quick checks).
	IperfBytes int64
	// Requests is the number of GETs per variant and round; default 200.
	Requests int
	// SFTPBytes is the size of the transferred file; default 1 GiB.
	SFTPBytes int64
	// Sessions is the number of `ssh HOST true` per variant and round;
	// default 10.
	Sessions int
	// Progress, if set, is called after each measurement.
	Progress func(SSHSample)
}

// SSHSample is one measurement.
type SSHSample struct {
	// Run counts rounds from 1.
	Run     int
	Test    SSHTest
	Variant string
	// Value is in the test's unit (see [SSHTest]).
	Value float64
}

// SSHReport is what [CompareSSH] measured.
type SSHReport struct {
	// Config is the configuration with its defaults filled in.
	Config SSHConfig
	// OpenSSH is `ssh -V`'s answer; Iperf the first line of
	// `iperf3 --version`; SFTPServer the path of sshd's sftp-server.
	OpenSSH, Iperf, SFTPServer string
	// Variants lists each test's variants.
	Variants map[SSHTest][]string
	Samples  []SSHSample
}

// Stats summarizes a variant's values of a test over the rounds.
func (r *SSHReport) Stats(t SSHTest, variant string) Stats {
	var v []float64
	for _, s := range r.Samples {
		if s.Test == t && s.Variant == variant {
			v = append(v, s.Value)
		}
	}
	return Summarize(v)
}

// PairedRatio summarizes, over the rounds in which both were measured, the
// ratio of a's value to b's. With base set (the SOCKS test's direct GET),
// each value is first reduced by base's value of the same round: the ratio
// of the latencies the proxies add.
func (r *SSHReport) PairedRatio(t SSHTest, a, b, base string) Stats {
	byRun := map[int]map[string]float64{}
	for _, s := range r.Samples {
		if s.Test != t {
			continue
		}
		if byRun[s.Run] == nil {
			byRun[s.Run] = map[string]float64{}
		}
		byRun[s.Run][s.Variant] = s.Value
	}
	var ratios []float64
	for _, m := range byRun {
		va, okA := m[a]
		vb, okB := m[b]
		vbase, okBase := m[base]
		if !okA || !okB || (base != "" && !okBase) {
			continue
		}
		if vb -= vbase; vb != 0 {
			ratios = append(ratios, (va-vbase)/vb)
		}
	}
	return Summarize(ratios)
}

// sshVariant is one way of doing a test. start brings up what it needs
// (forwarding processes) and returns the measurement and the stop.
type sshVariant struct {
	name  string
	start func(ctx context.Context) (measure measureFunc, stop func() error, err error)
}

// CompareSSH measures alknet's SSH service, its clients and its SFTP
// service against OpenSSH's sshd on 127.0.0.1 (started with its own host
// key and configuration, offering AES128GCM and ChaCha20Poly1305), with
// stock clients (ssh, sftp, iperf3) where the test is about them. Each
// test starts its variants, then runs cfg.Runs rounds, one measurement
// of every variant per round, in an order rotating from round to round.
// It stops at the first failure, returning what it measured so far; every
// process it started is stopped before it returns.
func CompareSSH(ctx context.Context, cfg SSHConfig) (*SSHReport, error) {
	if cfg.Tests == nil {
		cfg.Tests = SSHTests()
	}
	if cfg.Runs == 0 {
		cfg.Runs = 3
	}
	if cfg.IperfTime == 0 {
		cfg.IperfTime = 5 * time.Second
	}
	if cfg.Requests == 0 {
		cfg.Requests = 200
	}
	if cfg.SFTPBytes == 0 {
		cfg.SFTPBytes = 1 << 30
	}
	if cfg.Sessions == 0 {
		cfg.Sessions = 10
	}
	rep := &SSHReport{Config: cfg, Variants: map[SSHTest][]string{}}
	if cfg.Binary == "" {
		return rep, errors.New("bench: ssh: no alknet binary")
	}
	if cfg.IperfTime < time.Second || cfg.IperfTime%time.Second != 0 {
		return rep, fmt.Errorf("bench: ssh: iperf3 time %v: want whole seconds", cfg.IperfTime)
	}
	rep.OpenSSH = toolVersion(ctx, "ssh", "-V")
	rep.Iperf = toolVersion(ctx, "iperf3", "--version")
	rig, err := startSSHRig(ctx, cfg.Binary)
	if err != nil {
		return rep, fmt.Errorf("bench: ssh: %w", err)
	}
	rep.SFTPServer = rig.sftpSrv
	for _, t := range cfg.Tests {
		if err = rep.runTest(ctx, rig, t); err != nil {
			err = fmt.Errorf("bench: ssh %s: %w", t, err)
			break
		}
	}
	return rep, errors.Join(err, rig.Close())
}

// toolVersion returns the first line a tool prints for its version.
func toolVersion(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
}

// runTest runs the rounds of one test.
func (rep *SSHReport) runTest(ctx context.Context, rig *sshRig, t SSHTest) (err error) {
	if t == Tunnel {
		if err := rig.startIperf(ctx); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, rig.stopIperf()) }()
	}
	variants, err := rig.variants(t, rep.Config)
	if err != nil {
		return err
	}
	measures := make([]measureFunc, 0, len(variants))
	var stops []func() error
	defer func() {
		for _, stop := range stops {
			err = errors.Join(err, stop())
		}
	}()
	for _, v := range variants {
		m, stop, err := v.start(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", v.name, err)
		}
		measures = append(measures, m)
		stops = append(stops, stop)
		rep.Variants[t] = append(rep.Variants[t], v.name)
	}
	for run := 1; run <= rep.Config.Runs; run++ {
		for i := range variants {
			k := (i + run - 1) % len(variants)
			v, err := measures[k](ctx)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", run, variants[k].name, err)
			}
			s := SSHSample{Run: run, Test: t, Variant: variants[k].name, Value: v}
			rep.Samples = append(rep.Samples, s)
			if rep.Config.Progress != nil {
				rep.Config.Progress(s)
			}
		}
	}
	return nil
}

// BuildTempAlknet builds ./alknet of the repository around the working
// directory into a new temporary directory; remove deletes it.
func BuildTempAlknet(ctx context.Context) (bin string, remove func() error, err error) {
	root, err := FindRepoRoot(".")
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "alknet-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	remove = func() error { return os.RemoveAll(dir) }
	bin = filepath.Join(dir, "alknet")
	if err := BuildAlknet(ctx, root, bin); err != nil {
		return "", nil, errors.Join(err, remove())
	}
	return bin, remove, nil
}
