package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/alkdev/alknet/alknet/internal/node"
	"github.com/alkdev/alknet/call"
	"github.com/alkdev/alknet/core"
	afs "github.com/alkdev/alknet/fs"
)

// fsNodeFlag makes an fs command work on a node's store instead of the
// data dir's.
var fsNodeFlag = &cli.StringFlag{
	Name:  "node",
	Usage: "work on the store of the node at NODEID@HOST:PORT instead of this data dir's (default: the node running on this data dir, if any)",
}

// fsPinFlags choose the pin an fs command sets on the roots it stores.
func fsPinFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pin", Usage: "pin the root under this name (default: the root's CID)"},
		&cli.BoolFlag{Name: "no-pin", Usage: "do not pin: the content goes at the next gc"},
	}
}

// progressMin is the input size from which add shows a progress bar.
const progressMin = 16 << 20

var fsCommand = &cli.Command{
	Name:  "fs",
	Usage: "content-addressed files: add, fetch and move IPFS-compatible DAGs",
	Description: "Files and directories are stored by content in the data dir's store (fs.store_dir),\n" +
		"with the CIDs `ipfs add --cid-version 1` gives them. With --node ADDR a command works\n" +
		"on that node's store instead, over alknet/fs and alknet/call (needing fs:read, fs:write,\n" +
		"or admin for gc); transfers are verified block by block. While `alknet serve` runs on\n" +
		"this data dir its store is the node's: every command then works on it through the\n" +
		"node's control socket. See docs/fs.md.",
	Subcommands: []*cli.Command{
		{
			Name:      "add",
			Usage:     "add files and directories and print their CIDs",
			ArgsUsage: "PATH...",
			Description: "Adds each PATH (directories recursively; names starting with a dot only with\n" +
				"--hidden) and pins its root under its CID. With --node it sends the DAG to that node.",
			Flags: withCommon(append(fsPinFlags(),
				&cli.BoolFlag{Name: "hidden", Usage: "include files and directories whose names start with a dot"},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the CIDs"},
				fsNodeFlag, networkFlag)...),
			Action: fsAction(fsAdd),
		},
		{
			Name:      "get",
			Usage:     "write a file or directory to disk",
			ArgsUsage: "CID[/PATH]",
			Flags: withCommon(
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write it; must not exist (default: the last name of CID[/PATH])"},
				fsNodeFlag, networkFlag),
			Action: fsAction(fsGet),
		},
		{
			Name:      "cat",
			Usage:     "write a file, or a byte range of it, to stdout",
			ArgsUsage: "CID[/PATH]",
			Flags: withCommon(
				&cli.StringFlag{Name: "range", Usage: "bytes A-B (both included) or A- (to the end); only the blocks they need are read"},
				fsNodeFlag, networkFlag),
			Action: fsAction(fsCat),
		},
		withJSON(fsOpCommand("ls", "list a directory: CID, size and name of each entry", "CID[/PATH]", fsLs)),
		withJSON(fsOpCommand("stat", "print the type, size and block count of a DAG", "CID[/PATH]", fsStat)),
		fsOpCommand("pin", "pin a root (its whole DAG must be in the store) under NAME (default: the CID)", "CID [NAME]", fsPin),
		fsOpCommand("unpin", "remove a pin; the content stays until a gc", "NAME", fsUnpin),
		withJSON(fsOpCommand("pins", "list the pins: name and root", "", fsPins)),
		fsOpCommand("gc", "delete every block no pin reaches", "", fsGC),
		{
			Name:      "push",
			Usage:     "send a DAG from the local store to a node, which verifies, stores and pins it",
			ArgsUsage: "CID",
			Description: "Sends only the blocks the node does not hold yet, and pins the root there under\n" +
				"its CID (or --pin NAME). Needs fs:write on the node.",
			Flags: withCommon(append(fsPinFlags(),
				&cli.StringFlag{Name: "to", Usage: "the node, NODEID@HOST:PORT", Required: true},
				networkFlag)...),
			Action: fsAction(fsPush),
		},
		{
			Name:      "export",
			Usage:     "write a DAG as a CAR v1 file (for `ipfs dag import`) to stdout",
			ArgsUsage: "CID[/PATH]",
			Flags: withCommon(
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to this file instead of stdout"},
				fsNodeFlag, networkFlag),
			Action: fsAction(fsExport),
		},
		{
			Name:      "import",
			Usage:     "import a CAR file (from `ipfs dag export`, or - for stdin), verified, and pin its roots",
			ArgsUsage: "FILE.car",
			Flags:     withCommon(append(fsPinFlags(), fsNodeFlag, networkFlag)...),
			Action:    fsAction(fsImport),
		},
	},
}

// fsOpCommand is a subcommand that manages the local store, or with
// --node a node's through its fs/* operations.
func fsOpCommand(name, usage, args string, action func(context.Context, *cli.Context) error) *cli.Command {
	return &cli.Command{Name: name, Usage: usage, ArgsUsage: args, Flags: withCommon(fsNodeFlag, networkFlag), Action: fsAction(action)}
}

func fsLs(ctx context.Context, c *cli.Context) error {
	in, err := pathInput(c)
	if err != nil {
		return err
	}
	entries, err := fsOp(ctx, c, "fs/ls", in, func(ctx context.Context, s *afs.Store, in afs.PathInput) ([]afs.Entry, error) {
		target, err := resolveLocal(ctx, s, in)
		if err != nil {
			return nil, err
		}
		return s.Ls(ctx, target)
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, orEmpty(entries))
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for _, e := range entries {
		name := e.Name
		if e.Type == afs.TypeDirectory {
			name += "/"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", e.CID, e.Size, name)
	}
	return tw.Flush()
}

func fsStat(ctx context.Context, c *cli.Context) error {
	in, err := pathInput(c)
	if err != nil {
		return err
	}
	st, err := fsOp(ctx, c, "fs/stat", in, func(ctx context.Context, s *afs.Store, in afs.PathInput) (afs.Stat, error) {
		target, err := resolveLocal(ctx, s, in)
		if err != nil {
			return afs.Stat{}, err
		}
		return s.Stat(ctx, target)
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, st)
	}
	fmt.Fprintf(c.App.Writer, "cid\t%s\ntype\t%s\nsize\t%d\nblocks\t%d\ndag-bytes\t%d\n", st.CID, st.Type, st.Size, st.Blocks, st.DAGBytes)
	return nil
}

func fsPin(ctx context.Context, c *cli.Context) error {
	if c.NArg() < 1 || c.NArg() > 2 {
		return cli.Exit("alknet fs pin: want CID [NAME]", 2)
	}
	root, err := parseCID(c.Args().First())
	if err != nil {
		return err
	}
	in := afs.PinInput{Name: c.Args().Get(1), CID: root.String()}
	if in.Name == "" {
		in.Name = in.CID
	}
	p, err := fsOp(ctx, c, "fs/pin", in, func(ctx context.Context, s *afs.Store, in afs.PinInput) (afs.Pin, error) {
		return afs.Pin(in), s.Pin(ctx, in.Name, root)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "pinned %s %s\n", p.CID, p.Name)
	return nil
}

func fsUnpin(ctx context.Context, c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("alknet fs unpin: want NAME", 2)
	}
	_, err := fsOp(ctx, c, "fs/unpin", afs.PinInput{Name: c.Args().First()}, func(_ context.Context, s *afs.Store, in afs.PinInput) (afs.Pin, error) {
		return afs.Pin{Name: in.Name}, s.Unpin(in.Name)
	})
	return err
}

func fsPins(ctx context.Context, c *cli.Context) error {
	pins, err := fsOp(ctx, c, "fs/pins", struct{}{}, func(_ context.Context, s *afs.Store, _ struct{}) ([]afs.Pin, error) {
		return s.Pins(), nil
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c, orEmpty(pins))
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for _, p := range pins {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.CID)
	}
	return tw.Flush()
}

func fsGC(ctx context.Context, c *cli.Context) error {
	res, err := fsOp(ctx, c, "fs/gc", struct{}{}, func(ctx context.Context, s *afs.Store, _ struct{}) (afs.GCResult, error) {
		return s.GC(ctx)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "removed %d blocks (%d bytes), kept %d\n", res.Removed, res.Freed, res.Kept)
	return nil
}

// fsAction runs an fs command with a context that Ctrl-C and SIGTERM end.
func fsAction(f func(context.Context, *cli.Context) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
		defer stop()
		return f(ctx, c)
	}
}

// openLocal opens the data dir's store (fs.store_dir) for this process.
func openLocal(c *cli.Context) (*afs.Store, func(), error) {
	dir, err := dataDir(c)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := node.LoadConfig(configPath(c, dir))
	if err != nil {
		return nil, nil, err
	}
	logger, err := newLogger(c)
	if err != nil {
		return nil, nil, err
	}
	s, err := node.OpenStore(cfg.FS.Dir(dir), afs.Options{NoSync: cfg.FS.NoSync, Logger: logger})
	if err != nil {
		return nil, nil, err
	}
	return s.Store, func() { s.Close() }, nil
}

// openWork opens the store a command works in. Without a node (addr
// empty) that is the data dir's. With one, blocks pass through the data
// dir's store if cache is set (so fetched blocks stay and an interrupted
// fetch resumes) and no other process holds it, else through a temporary
// store in the data dir that release removes.
func openWork(c *cli.Context, addr string, cache bool) (*afs.Store, func(), error) {
	if addr == "" || cache {
		s, release, err := openLocal(c)
		if addr == "" || !errors.Is(err, node.ErrStoreInUse) {
			return s, release, err
		}
	}
	dir, err := dataDir(c)
	if err != nil {
		return nil, nil, err
	}
	tmp, err := os.MkdirTemp(dir, "fs-work-")
	if err != nil {
		return nil, nil, err
	}
	s, err := afs.Open(tmp, afs.Options{NoSync: true})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, nil, err
	}
	return s, func() {
		s.Close()
		os.RemoveAll(tmp)
	}, nil
}

// fsTarget is the node an fs command works on: --node (addr), or self
// when no --node is given or it names the node beside, and that node runs
// (its control socket answers); "" for the data dir's store.
func fsTarget(ctx context.Context, c *cli.Context, addr string) (string, error) {
	conn, ok, err := beside(ctx, c, addr, afs.ALPN)
	if err != nil || !ok {
		return addr, err
	}
	_ = conn.CloseWithError(core.CodeNoError, "")
	return selfAddr, nil
}

// dialFS connects to addr for alknet/fs with the data dir's key, or to
// the node beside through its control socket.
func dialFS(ctx context.Context, c *cli.Context, addr string) (core.Conn, error) {
	if conn, ok, err := beside(ctx, c, addr, afs.ALPN); ok || err != nil {
		return conn, err
	}
	d, err := dialer(c)
	if err != nil {
		return nil, err
	}
	return dial(ctx, d, addr, afs.ALPN)
}

// fsOp runs the operation op with input in on --node over alknet/call, or
// on the node running on this data dir through its control socket, or
// else runs local on the data dir's store.
func fsOp[I, O any](ctx context.Context, c *cli.Context, op string, in I, local func(context.Context, *afs.Store, I) (O, error)) (O, error) {
	var out O
	addr := c.String("node")
	if cl, ok, err := besideCall(ctx, c, addr, call.Options{}); err != nil {
		return out, err
	} else if ok {
		defer cl.Close()
		return out, cl.Call(ctx, op, in, &out)
	}
	if addr == "" {
		s, release, err := openLocal(c)
		if err != nil {
			return out, err
		}
		defer release()
		return local(ctx, s, in)
	}
	d, err := dialer(c)
	if err != nil {
		return out, err
	}
	noteAddr(addr)
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	client, err := call.Dial(dctx, addr, call.Options{Dialer: d})
	if err != nil {
		return out, err
	}
	defer client.Close()
	return out, client.Call(ctx, op, in, &out)
}

// parseCID reads a CID argument.
func parseCID(arg string) (cid.Cid, error) {
	c, err := cid.Decode(arg)
	if err != nil {
		return cid.Undef, fmt.Errorf("%q: not a CID: %w", arg, err)
	}
	return c, nil
}

// parseTarget splits a CID[/PATH] argument; a leading /ipfs/ is dropped.
func parseTarget(arg string) (cid.Cid, string, error) {
	root, path, _ := strings.Cut(strings.TrimPrefix(arg, "/ipfs/"), "/")
	c, err := parseCID(root)
	return c, path, err
}

// targetArg reads the one CID[/PATH] argument of a command.
func targetArg(c *cli.Context) (cid.Cid, string, error) {
	if c.NArg() != 1 {
		return cid.Undef, "", cli.Exit(fmt.Sprintf("alknet fs %s: want one CID[/PATH]", c.Command.Name), 2)
	}
	return parseTarget(c.Args().First())
}

// pathInput is targetArg as the input of an fs/* operation.
func pathInput(c *cli.Context) (afs.PathInput, error) {
	root, path, err := targetArg(c)
	return afs.PathInput{CID: root.String(), Path: path}, err
}

// resolveLocal finds what in names in s.
func resolveLocal(ctx context.Context, s *afs.Store, in afs.PathInput) (cid.Cid, error) {
	root, err := cid.Decode(in.CID)
	if err != nil {
		return cid.Undef, err
	}
	return s.Resolve(ctx, root, in.Path)
}

// parseRange reads "A-B" (bytes A to B, both included, as in HTTP ranges)
// or "A-" (from A to the end).
func parseRange(s string) (afs.Range, error) {
	a, b, ok := strings.Cut(s, "-")
	from, err := strconv.ParseUint(a, 10, 64)
	if !ok || err != nil {
		return afs.Range{}, fmt.Errorf("--range %q: want A-B or A-", s)
	}
	if b == "" {
		return afs.Range{Offset: from}, nil
	}
	to, err := strconv.ParseUint(b, 10, 64)
	if err != nil || to < from || to == ^uint64(0) {
		return afs.Range{}, fmt.Errorf("--range %q: want A-B with A <= B", s)
	}
	return afs.Range{Offset: from, Length: to - from + 1}, nil
}

// fetch makes what sel selects of root readable: in the local store, or
// fetched and verified from --node. It returns the store, the CID the path
// names, and the function releasing the store. With out set and a node to
// fetch from, the selection is a file whose bytes are written to out as
// they arrive verified (afs.Client.Cat), and streamed is true: the caller
// must not write them again.
func fetch(ctx context.Context, c *cli.Context, root cid.Cid, sel afs.Selection, out io.Writer) (s *afs.Store, target cid.Cid, release func(), streamed bool, err error) {
	addr, err := fsTarget(ctx, c, c.String("node"))
	if err != nil {
		return nil, cid.Undef, nil, false, err
	}
	s, release, err = openWork(c, addr, true)
	if err != nil {
		return nil, cid.Undef, nil, false, err
	}
	if addr == "" {
		target, err = s.Resolve(ctx, root, sel.Path)
	} else {
		var m *meter
		if c.Command.Name == "get" { // cat and export write to stdout: no meter
			m = newMeter(c, "fetched")
		}
		target, err = fetchFrom(ctx, c, addr, s, root, sel, m, out)
		m.finish(err == nil)
		streamed = out != nil
	}
	if err != nil {
		release()
		return nil, cid.Undef, nil, false, err
	}
	return s, target, release, streamed, nil
}

// skipWriter writes to w all but the first skip bytes: a retried cat
// writes the file from its start again, and out has the first part.
type skipWriter struct {
	w    io.Writer
	skip int64
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	if s.skip >= int64(n) {
		s.skip -= int64(n)
		return n, nil
	}
	p, s.skip = p[s.skip:], 0
	m, err := s.w.Write(p)
	return n - len(p) + m, err
}

// fetchFrom gets sel of root from the node at addr into s, writing the
// file to out as it arrives if out is set. If the dialer finds the QUIC
// connection bound by loss, the get stops and goes on over a new
// connection, which the dialer now makes with TCP+TLS: the blocks already
// stored are listed as had, so only the rest comes again (and the bytes
// already written to out are not written twice).
func fetchFrom(ctx context.Context, c *cli.Context, addr string, s *afs.Store, root cid.Cid, sel afs.Selection, m *meter, out io.Writer) (cid.Cid, error) {
	var base, last int64 // the bytes of earlier attempts, and of this one
	progress := func(n int64) {
		last = n
		m.set(base + n)
	}
	if m == nil {
		progress = nil
	}
	var written int64 // bytes of the file out holds
	get := func(ctx context.Context, conn core.Conn, redial func(context.Context) (core.Conn, error)) (cid.Cid, error) {
		cl := afs.NewClient(conn, s)
		cl.Progress = progress
		cl.Redial = redial
		if out == nil {
			target, _, err := cl.Get(ctx, root, sel)
			return target, err
		}
		target, n, _, err := cl.Cat(ctx, root, sel, &skipWriter{w: out, skip: written})
		written = max(written, n)
		return target, err
	}
	if addr == selfAddr {
		conn, err := dialFS(ctx, c, addr)
		if err != nil {
			return cid.Undef, err
		}
		defer conn.CloseWithError(core.CodeNoError, "")
		return get(ctx, conn, func(ctx context.Context) (core.Conn, error) { return dialFS(ctx, c, addr) })
	}
	d, err := dialer(c)
	if err != nil {
		return cid.Undef, err
	}
	for attempt := 0; ; attempt++ {
		base += last
		last = 0
		target, err := fetchOnce(ctx, d, addr, get)
		if !errors.Is(err, errLossBound) || attempt > 0 {
			return target, err
		}
		fmt.Fprintln(c.App.ErrWriter, "alknet fs: QUIC is bound by loss on this path; going on over TCP+TLS")
	}
}

// fetchOnce is one get over one connection; it returns errLossBound if the
// dialer judged the connection bound by loss before the get ended.
func fetchOnce(ctx context.Context, d *core.Dialer, addr string, get func(context.Context, core.Conn, func(context.Context) (core.Conn, error)) (cid.Cid, error)) (cid.Cid, error) {
	redial := func(ctx context.Context) (core.Conn, error) { return dial(ctx, d, addr, afs.ALPN) }
	conn, err := redial(ctx)
	if err != nil {
		return cid.Undef, err
	}
	defer conn.CloseWithError(core.CodeNoError, "")
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if lb := d.LossBound(conn); lb != nil {
		go func() {
			select {
			case <-lb:
				cancel(errLossBound)
			case <-ctx.Done():
			}
		}()
	}
	target, err := get(ctx, conn, redial)
	if err != nil && errors.Is(context.Cause(ctx), errLossBound) {
		return cid.Undef, errLossBound
	}
	return target, err
}

func fsCat(ctx context.Context, c *cli.Context) error {
	root, path, err := targetArg(c)
	if err != nil {
		return err
	}
	sel := afs.Selection{Path: path}
	if r := c.String("range"); r != "" {
		rg, err := parseRange(r)
		if err != nil {
			return cli.Exit(err.Error(), 2)
		}
		sel.Range = &rg
	}
	s, target, release, streamed, err := fetch(ctx, c, root, sel, c.App.Writer)
	if err != nil {
		return err
	}
	defer release()
	if streamed {
		return nil
	}
	rg := afs.Range{}
	if sel.Range != nil {
		rg = *sel.Range
	}
	_, err = s.ReadRange(ctx, target, rg, c.App.Writer)
	return err
}

func fsGet(ctx context.Context, c *cli.Context) error {
	root, path, err := targetArg(c)
	if err != nil {
		return err
	}
	out := c.String("output")
	if out == "" {
		out = root.String()
		if p := strings.Trim(path, "/"); p != "" {
			out = filepath.Base(p)
		}
	}
	sel := afs.Selection{Path: path}
	// From a node, a file is written while it arrives (afs.Client.Cat); a
	// directory (found when its root arrives) is fetched, then written.
	file := &newFile{name: out}
	s, target, release, streamed, err := fetch(ctx, c, root, sel, file)
	if err == nil && streamed {
		defer release()
		return file.finish()
	}
	file.remove()
	if errors.Is(err, afs.ErrNotFile) {
		s, target, release, _, err = fetch(ctx, c, root, sel, nil)
	}
	if err != nil {
		return err
	}
	defer release()
	return s.Export(ctx, target, out, afs.ExportOptions{Skipped: func(path, typ string) {
		fmt.Fprintf(c.App.ErrWriter, "alknet fs get: skipped %s %s\n", typ, path)
	}})
}

// newFile is the file fs get writes while it arrives: created (never
// existing before, as Export does) at the first write or at finish.
type newFile struct {
	name string
	f    *os.File
}

func (n *newFile) Write(p []byte) (int, error) {
	if n.f == nil {
		if err := n.create(); err != nil {
			return 0, err
		}
	}
	return n.f.Write(p)
}

func (n *newFile) create() error {
	f, err := os.OpenFile(n.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n.f = f
	return nil
}

// finish creates the file if nothing was written (an empty file) and
// closes it.
func (n *newFile) finish() error {
	if n.f == nil {
		if err := n.create(); err != nil {
			return err
		}
	}
	if err := n.f.Close(); err != nil {
		_ = os.Remove(n.name)
		return err
	}
	return nil
}

// remove deletes the file if it was created: a failed get leaves nothing.
func (n *newFile) remove() {
	if n.f != nil {
		n.f.Close()
		_ = os.Remove(n.name)
		n.f = nil
	}
}

// keeper returns what keeps a root an fs command stored: with addr empty,
// a pin in s (per --pin/--no-pin); else a push of the DAG from s to the
// node at addr, pinned there. close ends the connection.
func keeper(ctx context.Context, c *cli.Context, s *afs.Store, addr string) (keep func(cid.Cid) error, close func(), err error) {
	name := func(root cid.Cid) string {
		switch {
		case c.Bool("no-pin"):
			return ""
		case c.String("pin") != "":
			return c.String("pin")
		}
		return root.String()
	}
	if addr == "" {
		return func(root cid.Cid) error {
			if n := name(root); n != "" {
				return s.Pin(ctx, n, root)
			}
			return nil
		}, func() {}, nil
	}
	conn, err := dialFS(ctx, c, addr)
	if err != nil {
		return nil, nil, err
	}
	cl := afs.NewClient(conn, s)
	cl.Redial = func(ctx context.Context) (core.Conn, error) { return dialFS(ctx, c, addr) }
	return func(root cid.Cid) error {
			m := newMeter(c, "pushed")
			if m != nil {
				cl.Progress = m.set
			}
			_, err := cl.Put(ctx, root, name(root))
			m.finish(err == nil)
			return err
		}, func() {
			conn.CloseWithError(core.CodeNoError, "")
		}, nil
}

// checkPinFlags refuses --pin with more than one root, and with --no-pin.
func checkPinFlags(c *cli.Context, roots int) error {
	if c.String("pin") != "" && (roots > 1 || c.Bool("no-pin")) {
		return cli.Exit("--pin names one root, and not with --no-pin", 2)
	}
	return nil
}

func fsAdd(ctx context.Context, c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.Exit("alknet fs add: want at least one PATH", 2)
	}
	paths := c.Args().Slice()
	if err := checkPinFlags(c, len(paths)); err != nil {
		return err
	}
	addr, err := fsTarget(ctx, c, c.String("node"))
	if err != nil {
		return err
	}
	s, release, err := openWork(c, addr, false)
	if err != nil {
		return err
	}
	defer release()
	keep, done, err := keeper(ctx, c, s, addr)
	if err != nil {
		return err
	}
	defer done()
	bar := addBar(c, paths, c.Bool("hidden"))
	var base int64
	for _, p := range paths {
		var read int64
		opts := afs.AddOptions{Hidden: c.Bool("hidden")}
		if bar != nil {
			opts.Progress = func(n int64) {
				read = n
				_ = bar.Set64(base + n)
			}
		}
		root, err := s.Add(ctx, p, opts)
		if err == nil {
			err = keep(root)
		}
		if err != nil {
			return err
		}
		base += read
		if bar != nil {
			_ = bar.Clear()
		}
		if c.Bool("quiet") {
			fmt.Fprintln(c.App.Writer, root)
		} else {
			fmt.Fprintf(c.App.Writer, "added %s %s\n", root, p)
		}
	}
	if bar != nil {
		_ = bar.Finish()
	}
	return nil
}

// addBar returns a progress bar on stderr for adding paths, if stderr is a
// terminal and the files below paths hold at least progressMin bytes.
func addBar(c *cli.Context, paths []string, hidden bool) *progressbar.ProgressBar {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	var total int64
	for _, p := range paths {
		_ = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if path != p && !hidden && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
				total += info.Size()
			}
			return nil
		})
	}
	if total < progressMin {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription("adding"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func fsPush(ctx context.Context, c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("alknet fs push: want one CID", 2)
	}
	root, err := parseCID(c.Args().First())
	if err != nil {
		return err
	}
	s, release, err := openLocal(c)
	if err != nil {
		return err
	}
	defer release()
	keep, done, err := keeper(ctx, c, s, c.String("to"))
	if err != nil {
		return err
	}
	defer done()
	return keep(root)
}

func fsExport(ctx context.Context, c *cli.Context) error {
	root, path, err := targetArg(c)
	if err != nil {
		return err
	}
	sel := afs.Selection{Path: path}
	s, _, release, _, err := fetch(ctx, c, root, sel, nil)
	if err != nil {
		return err
	}
	defer release()
	out := c.String("output")
	if out == "" {
		_, err = s.ExportCAR(ctx, root, sel, c.App.Writer)
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	_, err = s.ExportCAR(ctx, root, sel, f)
	return errors.Join(err, f.Close())
}

func fsImport(ctx context.Context, c *cli.Context) error {
	if c.NArg() != 1 {
		return cli.Exit("alknet fs import: want one FILE.car (- for stdin)", 2)
	}
	var r io.Reader = os.Stdin
	if name := c.Args().First(); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	addr, err := fsTarget(ctx, c, c.String("node"))
	if err != nil {
		return err
	}
	s, release, err := openWork(c, addr, false)
	if err != nil {
		return err
	}
	defer release()
	roots, _, err := s.ImportCAR(ctx, r)
	if err != nil {
		return err
	}
	if err := checkPinFlags(c, len(roots)); err != nil {
		return err
	}
	keep, done, err := keeper(ctx, c, s, addr)
	if err != nil {
		return err
	}
	defer done()
	for _, root := range roots {
		if err := keep(root); err != nil {
			return err
		}
		fmt.Fprintf(c.App.Writer, "imported %s\n", root)
	}
	return nil
}
