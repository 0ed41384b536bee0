package sshbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"golang.org/x/net/proxy"
)

var (
	// ForwardListening is the log line of `alknet forward -L`.
	ForwardListening = regexp.MustCompile(`msg="local forward listening" listen=(\S+)`)
	// socksListening is the log line of `alknet socks`.
	socksListening = regexp.MustCompile(`msg="socks listening" addr=(\S+)`)
	// sshListening is ssh -v's line once a -L or -D listener is up.
	sshListening = regexp.MustCompile(`Local forwarding listening on \S+ port \d+`)
)

// MeasureFunc takes one measurement of a variant.
type MeasureFunc = func(ctx context.Context) (float64, error)

// NoStop is the stop of a variant that starts nothing.
func NoStop() error { return nil }

// variants returns the variants of test t.
func (r *SSHRig) variants(t SSHTest, cfg SSHConfig) ([]SSHVariant, error) {
	ciphers := []string{AES128GCM, chaCha20Poly1305}
	var vs []SSHVariant
	switch t {
	case tunnel:
		length := []string{"-t", strconv.Itoa(int(cfg.IperfTime / time.Second))}
		if cfg.iperfBytes > 0 {
			length = []string{"-n", strconv.FormatInt(cfg.iperfBytes, 10)}
		}
		iperf := func(addr string) MeasureFunc {
			return func(ctx context.Context) (float64, error) { return r.Iperf3(ctx, addr, length) }
		}
		target := ":" + r.ServerPort(r.IperfPort)
		vs = append(vs,
			r.AlknetListener(variantAlknet, ForwardListening, iperf, "forward", "-L", "127.0.0.1:0"+target),
			r.AlknetListener(variantAlknetTCP, ForwardListening, iperf, "forward", "--network", "tcp", "-L", "127.0.0.1:0"+target),
			r.AlknetListener(variantAlknetSSH, ForwardListening, iperf, "forward", "--forward-protocol", "ssh", "-L", "127.0.0.1:0"+target),
			SSHVariant{variantBareQUIC, func(ctx context.Context) (MeasureFunc, func() error, error) {
				addr, stop, err := startBareForward(ctx, hostPort(r.IperfPort))
				if err != nil {
					return nil, nil, err
				}
				return iperf(addr), stop, nil
			}})
		for _, c := range ciphers {
			vs = append(vs, r.SSHListener(withCipher(variantPipe, c), "-L", target, iperf, r.toNode(c)))
		}
		for _, c := range ciphers {
			vs = append(vs, r.SSHListener(withCipher(variantOpenSSH, c), "-L", target, iperf, r.ToSSHD(c)))
		}
	case socks:
		get := func(addr string) MeasureFunc { return r.getter(addr, cfg.requests) }
		vs = append(vs,
			SSHVariant{variantDirect, func(context.Context) (MeasureFunc, func() error, error) { return get(""), NoStop, nil }},
			r.AlknetListener(variantAlknet, socksListening, get, "socks", "--listen", "127.0.0.1:0"),
			r.AlknetListener(variantAlknetTCP, socksListening, get, "socks", "--network", "tcp", "--listen", "127.0.0.1:0"))
		for _, c := range ciphers {
			vs = append(vs, r.SSHListener(withCipher(variantOpenSSH, c), "-D", "", get, r.ToSSHD(c)))
		}
	case SFTPGet, sftpPut:
		if err := r.EnsureSFTPFile(cfg.SFTPBytes); err != nil {
			return nil, err
		}
		vs = append(vs,
			r.SFTPVariant(variantAlknet, t, "/", []string{"-D", r.PipeCommand("alknet/sftp")}),
			r.SFTPVariant(variantAlknetTCP, t, "/", []string{"-D", r.PipeCommand("alknet/sftp", "--network", "tcp")}))
		for _, c := range ciphers {
			vs = append(vs, r.SFTPVariant(withCipher(variantOpenSSH, c), t, r.Srv+"/", r.ToSSHD(c)))
		}
	case setup:
		for _, v := range []struct {
			name string
			args []string
		}{
			{variantPipe, append(append([]string{"ssh"}, r.toNode("")...), "true")},
			{variantOpenSSH, append(append([]string{"ssh"}, r.ToSSHD("")...), "true")},
			{variantAlknet, []string{r.Bin, "ssh", "--data-dir", r.clientDir, r.NodeAddr, "true"}},
			{variantAlknetStart, []string{r.Bin, "id", "--data-dir", r.clientDir}},
		} {
			m := func(ctx context.Context) (float64, error) { return timeRuns(ctx, cfg.sessions, v.args) }
			vs = append(vs, SSHVariant{v.name, func(context.Context) (MeasureFunc, func() error, error) { return m, NoStop, nil }})
		}
	default:
		return nil, fmt.Errorf("unknown test %q", t)
	}
	return vs, nil
}

// AlknetListener is a variant served by a long-running alknet client,
// `alknet CMD FLAGS… NODE` (forward or socks), that logs the address it
// listens on, which measure is given.
func (r *SSHRig) AlknetListener(name string, ready *regexp.Regexp, measure func(addr string) MeasureFunc, cmd string, flags ...string) SSHVariant {
	return SSHVariant{name, func(ctx context.Context) (MeasureFunc, func() error, error) {
		name, args := r.Place.ClientCmd(r.Bin, append(append([]string{cmd, "--data-dir", r.clientDir}, flags...), r.NodeAddr)...)
		c, m, err := harness.StartChild(ctx, ready, name, args...)
		if err != nil {
			return nil, nil, err
		}
		return measure(m[1]), c.Stop, nil
	}}
}

// SSHListener is a variant served by a long-running stock `ssh -N` with a
// -L or -D listener on a free port of 127.0.0.1; target (":HOST:PORT" for
// -L, "" for -D) completes the forward's specification.
func (r *SSHRig) SSHListener(name, flag, target string, measure func(addr string) MeasureFunc, dest []string) SSHVariant {
	return SSHVariant{name, func(ctx context.Context) (MeasureFunc, func() error, error) {
		port, err := harness.FreePort()
		if err != nil {
			return nil, nil, err
		}
		listen := hostPort(port)
		name, args := r.Place.ClientCmd("ssh", append([]string{"-N", "-v", "-o", "ExitOnForwardFailure=yes", flag, listen + target}, dest...)...)
		c, _, err := harness.StartChild(ctx, sshListening, name, args...)
		if err != nil {
			return nil, nil, err
		}
		return measure(listen), c.Stop, nil
	}}
}

// iperfResult is the part of iperf3's JSON report the tunnel test reads.
type iperfResult struct {
	Error string `json:"error"`
	End   struct {
		SumReceived struct {
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// iperfTries is how often a failed iperf3 run is tried: the server, which
// serves one test at a time, can still be ending the previous one when the
// next client connects, and then resets it.
const iperfTries = 3

// iperfTimeout bounds one iperf3 run.
const iperfTimeout = 2 * time.Minute

// Iperf3 runs `iperf3 -c` through the forward listening on addr, with
// length ("-t SECONDS" or "-n BYTES"), and returns the receiver's Mbit/s,
// trying again a second after a failure.
func (r *SSHRig) Iperf3(ctx context.Context, addr string, length []string) (float64, error) {
	var err error
	for range iperfTries {
		var mbps float64
		if mbps, err = r.iperfOnce(ctx, addr, length); err == nil {
			return mbps, nil
		}
		select {
		case <-ctx.Done():
			return 0, errors.Join(err, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	return 0, err
}

// iperfOnce is one iperf3 run.
func (r *SSHRig) iperfOnce(ctx context.Context, addr string, length []string) (float64, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	name, args := r.Place.ClientCmd("iperf3", append([]string{"-c", host, "-p", port, "-J"}, length...)...)
	out, err := harness.RunChild(ctx, iperfTimeout, "", name, args...)
	var res iperfResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, errors.Join(err, fmt.Errorf("iperf3 report: %w", jerr))
	}
	if res.Error != "" {
		return 0, fmt.Errorf("iperf3: %s", res.Error)
	}
	if err != nil {
		return 0, err
	}
	if res.End.SumReceived.BitsPerSecond <= 0 {
		return 0, errors.New("iperf3: nothing received")
	}
	return res.End.SumReceived.BitsPerSecond / 1e6, nil
}

// getter returns a measurement of n GETs of the HTTP server, each on a new
// connection, through the SOCKS5 proxy at proxyAddr ("" for none): their
// median latency in seconds.
func (r *SSHRig) getter(proxyAddr string, n int) MeasureFunc {
	return func(ctx context.Context) (float64, error) {
		var dial func(ctx context.Context, network, addr string) (net.Conn, error)
		if proxyAddr == "" {
			dial = (&net.Dialer{}).DialContext
		} else {
			d, err := proxy.SOCKS5("tcp", proxyAddr, nil, &net.Dialer{})
			if err != nil {
				return 0, err
			}
			dial = d.(proxy.ContextDialer).DialContext
		}
		tr := &http.Transport{DialContext: dial, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		lat := make([]time.Duration, 0, n)
		for range n {
			start := time.Now()
			if err := getOnce(ctx, client, r.http.URL); err != nil {
				return 0, err
			}
			lat = append(lat, time.Since(start))
		}
		return harness.Percentile(lat, 50).Seconds(), nil
	}
}

// getOnce fetches url and checks the body.
func getOnce(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(body) != socksBody {
		return fmt.Errorf("GET: status %d, %d bytes", resp.StatusCode, len(body))
	}
	return nil
}

// SFTPFile is the file the SFTP tests transfer, in the served directory.
const SFTPFile = "big.bin"

// EnsureSFTPFile creates the file the SFTP tests transfer, once.
func (r *SSHRig) EnsureSFTPFile(size int64) error {
	if r.sftpSize == size {
		return nil
	}
	sum, err := makeFile(filepath.Join(r.Srv, SFTPFile), size)
	if err != nil {
		return fmt.Errorf("sftp file: %w", err)
	}
	r.sftpSum, r.sftpSize = sum, size
	return nil
}

// SFTPVariant transfers the file with stock sftp in batch mode, args
// choosing the server; remote is the served directory as that server
// names it. Before each transfer the file systems are synced, so that no
// transfer pays for an earlier one's writes; the result's SHA-256 is
// checked afterwards, untimed, and the copy removed.
func (r *SSHRig) SFTPVariant(name string, t SSHTest, remote string, args []string) SSHVariant {
	m := func(ctx context.Context) (float64, error) {
		src, dst := remote+SFTPFile, filepath.Join(r.local, SFTPFile)
		check := dst
		if t == sftpPut {
			src, dst = filepath.Join(r.Srv, SFTPFile), remote+"put.bin"
			check = filepath.Join(r.Srv, "put.bin")
		}
		batch := fmt.Sprintf("get %s %s\n", src, dst)
		if t == sftpPut {
			batch = fmt.Sprintf("put %s %s\n", src, dst)
		}
		syscall.Sync()
		start := time.Now()
		timeout := time.Minute + time.Duration(r.sftpSize/1e6)*time.Second
		name, argv := r.Place.ClientCmd("sftp", append([]string{"-b", "-"}, args...)...)
		_, err := harness.RunChild(ctx, timeout, batch, name, argv...)
		elapsed := time.Since(start)
		if err != nil {
			return 0, err
		}
		sum, err := FileSum(check)
		if err != nil {
			return 0, err
		}
		if err := os.Remove(check); err != nil {
			return 0, err
		}
		if sum != r.sftpSum {
			return 0, fmt.Errorf("%s: SHA-256 of the copy differs from the original", t)
		}
		return float64(r.sftpSize) / 1e6 / elapsed.Seconds(), nil
	}
	return SSHVariant{name, func(context.Context) (MeasureFunc, func() error, error) { return m, NoStop, nil }}
}

// timeRuns runs argv n times and returns the median run time in seconds.
func timeRuns(ctx context.Context, n int, argv []string) (float64, error) {
	times := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		if _, err := harness.RunChild(ctx, time.Minute, "", argv[0], argv[1:]...); err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
	}
	return harness.Percentile(times, 50).Seconds(), nil
}
