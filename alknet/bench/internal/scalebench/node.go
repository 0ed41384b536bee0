package scalebench

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
	"github.com/alkdev/alknet/core"
)

// node is an `alknet serve` child on a data directory of its own.
type node struct {
	*harness.Child
	dir      string // the data directory
	id       core.NodeID
	addr     string // <nodeid>@127.0.0.1:port
	hostport string
	owned    bool // dir is removed by stop
}

// startNode runs `BINARY serve` on the data directory dir (a new temporary
// one if empty, removed by stop) holding config as alknet.toml, on a free
// loopback port, and waits until it listens.
func startNode(ctx context.Context, binary, dir, config string) (*node, error) {
	owned := dir == ""
	if owned {
		var err error
		if dir, err = os.MkdirTemp("", "alknet-bench-scale-"); err != nil {
			return nil, err
		}
	}
	cleanup := func() {
		if owned {
			os.RemoveAll(dir)
		}
	}
	port, err := harness.FreePort()
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "alknet.toml"), []byte(config), 0o600)
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	hostport := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c, m, err := harness.StartChild(ctx, harness.ListeningLine, binary, "serve", "--data-dir", dir, "--listen", hostport)
	if err != nil {
		cleanup()
		return nil, err
	}
	n := &node{Child: c, dir: dir, addr: m[1] + "@" + hostport, hostport: hostport, owned: owned}
	if n.id, err = core.ParseNodeID(m[1]); err != nil {
		return nil, n.stopWith(err)
	}
	return n, nil
}

// rss returns the node's VmRSS in bytes.
func (n *node) rss() (int64, error) {
	rss, _, err := harness.ProcMemory(n.Cmd.Process.Pid)
	return rss, err
}

// stop stops the node and removes its data directory if stop owns it.
func (n *node) stop() error {
	if n.owned {
		defer os.RemoveAll(n.dir)
	}
	return n.Child.Stop()
}

// stopWith stops the node and returns err joined with stop's error.
func (n *node) stopWith(err error) error {
	if serr := n.stop(); serr != nil {
		return errors.Join(err, serr)
	}
	return err
}
