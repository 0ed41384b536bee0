package core_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// netnsPair is two network namespaces joined by a veth pair: the node's
// at 10.77.0.1, the client's at 10.78.0.1 (addresses are /32, so the
// client's can be swapped without touching routes).
type netnsPair struct {
	node, client string
	dev          string // the client's end
}

const (
	migNodeIP = "10.77.0.1"
	migAddrA  = "10.78.0.1"
	migAddrB  = "10.78.0.2"
)

func startNetnsPair(t *testing.T) *netnsPair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if sysSetns == 0 {
		t.Skipf("setns number unknown on %s", runtime.GOARCH)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip tool")
	}
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	p := &netnsPair{node: "alkmig-n" + id, client: "alkmig-c" + id, dev: "amc" + id}
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", p.node).CombinedOutput(); err != nil {
		t.Skipf("cannot make network namespaces: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.node).Run() })
	ip("netns", "add", p.client)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", p.client).Run() })
	nodeDev := "amn" + id
	ip("link", "add", nodeDev, "netns", p.node, "type", "veth", "peer", "name", p.dev, "netns", p.client)
	ip("-n", p.node, "link", "set", "lo", "up")
	ip("-n", p.node, "link", "set", nodeDev, "up")
	ip("-n", p.node, "addr", "add", migNodeIP+"/32", "dev", nodeDev)
	ip("-n", p.node, "route", "add", "10.78.0.0/16", "dev", nodeDev)
	ip("-n", p.client, "link", "set", "lo", "up")
	ip("-n", p.client, "link", "set", p.dev, "up")
	ip("-n", p.client, "addr", "add", migAddrA+"/32", "dev", p.dev)
	ip("-n", p.client, "route", "add", migNodeIP+"/32", "dev", p.dev)
	return p
}

// in runs fn on a thread in namespace ns: the sockets fn opens stay there.
func in(t *testing.T, ns string, fn func()) {
	t.Helper()
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends in its namespace
		if _, _, errno := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); errno != 0 {
			t.Errorf("setns %s: %v", ns, errno)
			return
		}
		fn()
	}()
	<-done
}

// TestClientMovesAddress: a client's address changes in the middle of a
// transfer and of an interactive exchange on one QUIC connection; both
// finish with the right bytes on the same connection (one handshake), and
// the node logs the move. "gap" removes the old address before the new one
// is up, so sends fail for a while.
func TestClientMovesAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		gap  bool
	}{{"overlap", false}, {"gap", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := startNetnsPair(t)
			var log coretest.Buffer
			var n *coretest.Node
			in(t, p.node, func() {
				n = coretest.Start(t, core.Config{
					Addr:   migNodeIP + ":0",
					Logger: slog.New(slog.NewTextHandler(&log, nil)),
				}, handlerFunc{"test/a", func(ctx context.Context, c core.Conn) error {
					var wg sync.WaitGroup
					defer wg.Wait()
					for {
						s, err := c.AcceptStream(ctx)
						if err != nil {
							return nil
						}
						wg.Go(func() {
							defer s.Close()
							_, _ = io.Copy(s, s)
							_ = s.CloseWrite()
						})
					}
				}})
			})
			var c core.Conn
			var err error
			in(t, p.client, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err = (&core.Dialer{Network: core.NetworkQUIC}).Dial(ctx, n.Addr, "test/a")
			})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseWithError(core.CodeNoError, "")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			// The transfer: 8 MiB, paced over about two seconds, echoed.
			bulk, err := c.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			const chunks, chunk = 256, 32 << 10
			sent, got := sha256.New(), sha256.New()
			half := make(chan struct{})
			go func() {
				buf := make([]byte, chunk)
				for i := range chunks {
					for j := range buf {
						buf[j] = byte(i + j)
					}
					sent.Write(buf)
					if _, err := bulk.Write(buf); err != nil {
						return
					}
					if i == chunks/4 {
						close(half)
					}
					time.Sleep(8 * time.Millisecond) // pacing, not synchronization
				}
				_ = bulk.CloseWrite()
			}()
			received := make(chan error, 1)
			go func() {
				n, err := io.Copy(got, bulk)
				if err == nil && n != chunks*chunk {
					err = fmt.Errorf("%d bytes back, want %d", n, chunks*chunk)
				}
				received <- err
			}()

			// The interactive exchange: a line every 20 ms, answered.
			chat, err := c.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			chatDone := make(chan error, 1)
			go func() {
				r := bufio.NewReader(chat)
				for i := 0; ; i++ {
					select {
					case <-ctx.Done():
						chatDone <- ctx.Err()
						return
					default:
					}
					line := fmt.Sprintf("keystroke %d\n", i)
					if _, err := io.WriteString(chat, line); err != nil {
						chatDone <- err
						return
					}
					back, err := r.ReadString('\n')
					if err != nil || back != line {
						chatDone <- fmt.Errorf("line %d: %q, %v", i, back, err)
						return
					}
					if i >= 100 {
						chatDone <- nil
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			}()

			<-half
			ip := func(args ...string) {
				t.Helper()
				if out, err := exec.Command("ip", append([]string{"-n", p.client}, args...)...).CombinedOutput(); err != nil {
					t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
				}
			}
			if tc.gap {
				ip("addr", "del", migAddrA+"/32", "dev", p.dev)
				time.Sleep(500 * time.Millisecond) // the outage: no address, no route
				// The new network comes up as DHCP would bring it.
				ip("addr", "add", migAddrB+"/32", "dev", p.dev)
				ip("route", "replace", migNodeIP+"/32", "dev", p.dev)
			} else {
				ip("addr", "add", migAddrB+"/32", "dev", p.dev)
				ip("addr", "del", migAddrA+"/32", "dev", p.dev)
			}

			if err := <-received; err != nil {
				t.Fatalf("transfer: %v", err)
			}
			if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
				t.Fatal("transfer came back different")
			}
			if err := <-chatDone; err != nil {
				t.Fatalf("interactive stream: %v", err)
			}
			if err := context.Cause(c.Context()); err != nil {
				t.Fatalf("connection ended: %v", err)
			}
			if full, resumed := n.Endpoint.Handshakes(); full != 1 || resumed != 0 {
				t.Errorf("node counted %d full and %d resumed handshakes, want one", full, resumed)
			}
			deadline := time.Now().Add(3 * time.Second)
			for !strings.Contains(log.String(), "new_remote_ip="+migAddrB) {
				if time.Now().After(deadline) {
					t.Fatalf("node did not log the move; log:\n%s", log.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// sysSetns is setns(2) on linux/amd64 and linux/arm64.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268}[runtime.GOARCH]
