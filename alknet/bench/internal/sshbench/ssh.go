package sshbench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// SSHTest is one measurement of the SSH comparison.
type SSHTest string

// The SSH tests.
const (
	// tunnel is iperf3 throughput through a local port forward (-L), in
	// Mbit/s received.
	tunnel SSHTest = "tunnel"
	// socks is the median latency of a small HTTP GET on a new connection
	// through a SOCKS5 proxy (and directly, the baseline), in seconds.
	socks SSHTest = "socks"
	// SFTPGet and SFTPPut are stock sftp downloading and uploading one file,
	// in MB/s (10^6 bytes) over the sftp process's run time.
	SFTPGet SSHTest = "sftp-get"
	sftpPut SSHTest = "sftp-put"
	// setup is the median time of a stock `ssh HOST true`, from process
	// start to exit, in seconds.
	setup SSHTest = "setup"
)

// sshTests returns every test, in the order CompareSSH runs them.
func sshTests() []SSHTest { return []SSHTest{tunnel, socks, SFTPGet, sftpPut, setup} }

// ParseSSHTest returns the test named s.
func ParseSSHTest(s string) (SSHTest, error) {
	for _, t := range sshTests() {
		if string(t) == s {
			return t, nil
		}
	}
	return "", fmt.Errorf("bench: unknown ssh test %q (want one of %v)", s, sshTests())
}

// Variant names of the SSH comparison. A cipher suffix names the SSH cipher
// the stock client was pinned to.
const (
	// variantAlknet is alknet's own client over QUIC: `alknet forward -L`,
	// `alknet socks`, `alknet ssh HOST true`; for SFTP, stock sftp on
	// alknet/sftp through `alknet pipe` (raw SFTP, no SSH underneath).
	variantAlknet = "alknet"
	// variantAlknetTCP is VariantAlknet with `--network tcp`: alknet over
	// TCP+TLS instead of QUIC.
	variantAlknetTCP = "alknet-tcp"
	// variantAlknetSSH is `alknet forward --forward-protocol ssh`: the SSH
	// channels of alknet/ssh over QUIC, as before alknet/fwd.
	variantAlknetSSH = "alknet-ssh"
	// variantBareQUIC is -L over bare quic-go, one stream per forwarded
	// connection, in the bench process (bareForward): the QUIC ceiling.
	variantBareQUIC = "bare-quic"
	// variantPipe is stock ssh to the node through
	// `alknet pipe --alpn alknet/ssh` as its ProxyCommand.
	variantPipe = "pipe"
	// variantOpenSSH is stock ssh (or sftp) to sshd over TCP.
	variantOpenSSH = "openssh"
	// variantDirect is the SOCKS test's baseline: the GET without a proxy.
	variantDirect = "direct"
	// variantAlknetStart is the Setup test's `alknet id` on the client's
	// data directory: starting the binary and opening its vault, which every
	// `alknet pipe` pays before it dials.
	variantAlknetStart = "alknet-start"
)

// withCipher returns "variant/cipher" with the cipher's short name
// (aes128-gcm, chacha20-poly1305).
func withCipher(variant, cipher string) string {
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
	// iperfBytes, if set, makes each iperf3 run send that many bytes
	// instead of running for IperfTime (for quick checks).
	iperfBytes int64
	// requests is the number of GETs per variant and round; default 200.
	requests int
	// SFTPBytes is the size of the transferred file; default 1 GiB.
	SFTPBytes int64
	// sessions is the number of `ssh HOST true` per variant and round;
	// default 10.
	sessions int
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
	// config is the configuration with its defaults filled in.
	config SSHConfig
	// openSSH is `ssh -V`'s answer; iperf the first line of
	// `iperf3 --version`; sftpServer the path of sshd's sftp-server.
	openSSH, iperf, sftpServer string
	// variants lists each test's variants.
	variants map[SSHTest][]string
	samples  []SSHSample
}

// stats summarizes a variant's values of a test over the rounds.
func (r *SSHReport) stats(t SSHTest, variant string) harness.Stats {
	var v []float64
	for _, s := range r.samples {
		if s.Test == t && s.Variant == variant {
			v = append(v, s.Value)
		}
	}
	return harness.Summarize(v)
}

// pairedRatio summarizes, over the rounds in which both were measured, the
// ratio of a's value to b's. With base set (the SOCKS test's direct GET),
// each value is first reduced by base's value of the same round: the ratio
// of the latencies the proxies add.
func (r *SSHReport) pairedRatio(t SSHTest, a, b, base string) harness.Stats {
	byRun := map[int]map[string]float64{}
	for _, s := range r.samples {
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
	return harness.Summarize(ratios)
}

// SSHVariant is one way of doing a test. start brings up what it needs
// (forwarding processes) and returns the measurement and the stop.
type SSHVariant struct {
	Name  string
	Start func(ctx context.Context) (measure MeasureFunc, stop func() error, err error)
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
		cfg.Tests = sshTests()
	}
	if cfg.Runs == 0 {
		cfg.Runs = 3
	}
	if cfg.IperfTime == 0 {
		cfg.IperfTime = 5 * time.Second
	}
	if cfg.requests == 0 {
		cfg.requests = 200
	}
	if cfg.SFTPBytes == 0 {
		cfg.SFTPBytes = 1 << 30
	}
	if cfg.sessions == 0 {
		cfg.sessions = 10
	}
	rep := &SSHReport{config: cfg, variants: map[SSHTest][]string{}}
	if cfg.Binary == "" {
		return rep, errors.New("bench: ssh: no alknet binary")
	}
	if cfg.IperfTime < time.Second || cfg.IperfTime%time.Second != 0 {
		return rep, fmt.Errorf("bench: ssh: iperf3 time %v: want whole seconds", cfg.IperfTime)
	}
	rep.openSSH = toolVersion(ctx, "ssh", "-V")
	rep.iperf = toolVersion(ctx, "iperf3", "--version")
	rig, err := startSSHRig(ctx, cfg.Binary)
	if err != nil {
		return rep, fmt.Errorf("bench: ssh: %w", err)
	}
	rep.sftpServer = rig.sftpSrv
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
func (rep *SSHReport) runTest(ctx context.Context, rig *SSHRig, t SSHTest) (err error) {
	if t == tunnel {
		if err := rig.StartIperf(ctx); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, rig.StopIperf()) }()
	}
	variants, err := rig.variants(t, rep.config)
	if err != nil {
		return err
	}
	measures := make([]MeasureFunc, 0, len(variants))
	var stops []func() error
	defer func() {
		for _, stop := range stops {
			err = errors.Join(err, stop())
		}
	}()
	for _, v := range variants {
		m, stop, err := v.Start(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", v.Name, err)
		}
		measures = append(measures, m)
		stops = append(stops, stop)
		rep.variants[t] = append(rep.variants[t], v.Name)
	}
	for run := 1; run <= rep.config.Runs; run++ {
		for i := range variants {
			k := (i + run - 1) % len(variants)
			v, err := measures[k](ctx)
			if err != nil {
				return fmt.Errorf("run %d, %s: %w", run, variants[k].Name, err)
			}
			s := SSHSample{Run: run, Test: t, Variant: variants[k].Name, Value: v}
			rep.samples = append(rep.samples, s)
			if rep.config.Progress != nil {
				rep.config.Progress(s)
			}
		}
	}
	return nil
}
