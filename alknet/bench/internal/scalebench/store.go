package scalebench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alkdev/alknet/alknet/bench/internal/harness"
)

// StoreOptions configures [MeasureStore].
type StoreOptions struct {
	// Binary is the alknet executable; required.
	Binary string
	// Blocks are the fs store sizes (files of one block each, in one
	// directory); Refs the git repository sizes (branches). Either may be
	// empty.
	Blocks, Refs []int
	// Runs is how many times each command is timed; zero means 3.
	Runs int
	// Progress, if set, receives a line of progress now and then.
	Progress func(string)
}

// StoreResult is one size's command times, medians of the runs.
type StoreResult struct {
	// Kind is "fs" or "git"; Size the blocks or refs asked for.
	Kind string
	Size int
	// fs: Blocks is the DAG's block count as `fs stat` gives it; Add the
	// time of `fs add` building the store (no node running, no fsync).
	// Ls is `fs ls ROOT`, GC `fs gc`, both through the running node.
	Blocks  int
	Add     time.Duration
	Ls, GC  time.Duration
	Entries int // lines `fs ls` printed
	// git: LsRemote is `git ls-remote alknet://…` through the node, Local
	// `git ls-remote` on the repository's path; Listed the refs printed.
	LsRemote, Local time.Duration
	Listed          int
}

// storeCommandTimeout bounds one command of the store measurements.
const storeCommandTimeout = 10 * time.Minute

// MeasureStore builds, for each size, an fs store of that many pinned
// blocks (a directory of that many one-block files, added with `alknet fs
// add` while no node runs, with [fs] no_sync) and times `alknet fs ls
// ROOT` and `alknet fs gc` against `alknet serve` running on it (through
// its control socket); and a bare repository with that many branches (one
// commit, `git update-ref --stdin`, refs packed) in the node's git root,
// timing `git ls-remote` over alknet (git-remote-alknet) and on the path.
func MeasureStore(ctx context.Context, opts StoreOptions) ([]StoreResult, error) {
	runs := cmpOr(opts.Runs, 3)
	progress := opts.Progress
	if progress == nil {
		progress = func(string) {}
	}
	var results []StoreResult
	for _, size := range opts.Blocks {
		r, err := measureFS(ctx, opts.Binary, size, runs)
		if err != nil {
			return results, err
		}
		progress(fmt.Sprintf("scale fs %d blocks: add %v, ls %v, gc %v", r.Blocks, r.Add.Round(time.Millisecond), r.Ls.Round(time.Millisecond), r.GC.Round(time.Millisecond)))
		results = append(results, r)
	}
	if len(opts.Refs) > 0 {
		rs, err := measureGit(ctx, opts.Binary, opts.Refs, runs, progress)
		results = append(results, rs...)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// measureFS builds a store of size one-block files and times fs ls and
// fs gc on it, runs times each.
func measureFS(ctx context.Context, bin string, size, runs int) (StoreResult, error) {
	res := StoreResult{Kind: "fs", Size: size}
	if size < 1 {
		return res, fmt.Errorf("bench: scale: %d blocks: want at least 1", size)
	}
	work, err := os.MkdirTemp("", "alknet-bench-scale-fs-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(work)
	src, data := filepath.Join(work, "src"), filepath.Join(work, "data")
	for _, d := range []string{src, data} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return res, err
		}
	}
	// Each file is under one chunk: one raw block each.
	for i := range size {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%07d", i)), []byte("alknet scale block "+strconv.Itoa(i)+"\n"), 0o600); err != nil {
			return res, err
		}
	}
	const config = "[fs]\nno_sync = true\n"
	if err := os.WriteFile(filepath.Join(data, "alknet.toml"), []byte(config), 0o600); err != nil {
		return res, err
	}
	start := time.Now()
	out, err := harness.RunChild(ctx, storeCommandTimeout, "", bin, "fs", "add", "--quiet", "--data-dir", data, src)
	res.Add = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("bench: scale: fs add of %d files: %w", size, err)
	}
	lines := strings.Fields(string(out))
	if len(lines) == 0 {
		return res, errors.New("bench: scale: fs add printed no CID")
	}
	root := lines[len(lines)-1]
	n, err := startNode(ctx, bin, data, config)
	if err != nil {
		return res, err
	}
	out, err = harness.RunChild(ctx, storeCommandTimeout, "", bin, "fs", "stat", "--data-dir", data, root)
	if err == nil {
		res.Blocks, err = statBlocks(out)
	}
	if err != nil {
		return res, n.stopWith(fmt.Errorf("bench: scale: fs stat: %w", err))
	}
	var ls, gc []time.Duration
	for range runs {
		d, out, err := timeRun(ctx, nil, bin, "fs", "ls", "--data-dir", data, root)
		if err != nil {
			return res, n.stopWith(err)
		}
		ls = append(ls, d)
		res.Entries = bytes.Count(out, []byte("\n"))
		if d, _, err = timeRun(ctx, nil, bin, "fs", "gc", "--data-dir", data); err != nil {
			return res, n.stopWith(err)
		}
		gc = append(gc, d)
	}
	res.Ls, res.GC = median(ls), median(gc)
	if res.Entries != size {
		return res, n.stopWith(fmt.Errorf("bench: scale: fs ls listed %d entries, want %d", res.Entries, size))
	}
	return res, n.stop()
}

// statBlocks reads the blocks line of `fs stat`.
func statBlocks(out []byte) (int, error) {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "blocks\t"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no blocks line in %q", harness.LastLines(string(out), 6))
}

// measureGit makes a repository per size in one node's git root and
// times git ls-remote on each, over alknet and on the path.
func measureGit(ctx context.Context, bin string, sizes []int, runs int, progress func(string)) ([]StoreResult, error) {
	work, err := os.MkdirTemp("", "alknet-bench-scale-git-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	data, client, binDir := filepath.Join(work, "data"), filepath.Join(work, "client"), filepath.Join(work, "bin")
	for _, d := range []string{data, client, binDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, err
		}
	}
	id, _, err := harness.AlknetID(ctx, bin, client)
	if err != nil {
		return nil, err
	}
	if _, err := harness.RunChild(ctx, time.Minute, "", bin, "git", "install-helper", binDir); err != nil {
		return nil, err
	}
	for _, size := range sizes {
		if size < 1 {
			return nil, fmt.Errorf("bench: scale: %d refs: want at least 1", size)
		}
		if err := makeRefs(ctx, filepath.Join(data, "git", repoName(size)), size); err != nil {
			return nil, err
		}
	}
	n, err := startNode(ctx, bin, data, fmt.Sprintf("[[peers]]\nid = \"bench\"\nkeys = [%q]\nscopes = [\"git:read\"]\n", id))
	if err != nil {
		return nil, err
	}
	env := append(harness.ChildEnv(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "ALKNET_DATA_DIR="+client)
	var results []StoreResult
	for _, size := range sizes {
		r := StoreResult{Kind: "git", Size: size}
		url := fmt.Sprintf("alknet://%s/%s", n.addr, repoName(size))
		path := filepath.Join(data, "git", repoName(size))
		var remote, local []time.Duration
		for range runs {
			d, out, err := timeRun(ctx, env, "git", "ls-remote", url)
			if err != nil {
				return results, n.stopWith(err)
			}
			remote = append(remote, d)
			r.Listed = bytes.Count(out, []byte("\n"))
			if d, _, err = timeRun(ctx, env, "git", "ls-remote", path); err != nil {
				return results, n.stopWith(err)
			}
			local = append(local, d)
		}
		r.LsRemote, r.Local = median(remote), median(local)
		if r.Listed < size {
			return results, n.stopWith(fmt.Errorf("bench: scale: git ls-remote listed %d refs, want %d", r.Listed, size))
		}
		progress(fmt.Sprintf("scale git %d refs: ls-remote %v (on the path %v)", size, r.LsRemote.Round(time.Millisecond), r.Local.Round(time.Millisecond)))
		results = append(results, r)
	}
	return results, n.stop()
}

func repoName(size int) string { return fmt.Sprintf("scale-%d.git", size) }

// makeRefs makes a bare repository at path with one empty commit and size
// branches on it, packed.
func makeRefs(ctx context.Context, path string, size int) error {
	git := func(stdin string, args ...string) (string, error) {
		out, err := harness.RunChild(ctx, storeCommandTimeout, stdin, "git", append([]string{"-C", path,
			"-c", "user.name=alknet-bench", "-c", "user.email=bench@alknet.invalid"}, args...)...)
		return strings.TrimSpace(string(out)), err
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return err
	}
	if _, err := git("", "init", "--quiet", "--bare"); err != nil {
		return err
	}
	tree, err := git("", "hash-object", "-t", "tree", "-w", "/dev/null")
	if err != nil {
		return err
	}
	commit, err := git("", "commit-tree", tree, "-m", "scale")
	if err != nil {
		return err
	}
	var b strings.Builder
	for i := range size {
		fmt.Fprintf(&b, "create refs/heads/b%07d %s\n", i, commit)
	}
	if _, err := git(b.String(), "update-ref", "--stdin"); err != nil {
		return err
	}
	_, err = git("", "pack-refs", "--all")
	return err
}

// timeRun runs name with args (env nil: the children's environment) and
// returns its wall time and standard output.
func timeRun(ctx context.Context, env []string, name string, args ...string) (time.Duration, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, storeCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	if env == nil {
		cmd.Env = harness.ChildEnv()
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, nil, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, harness.LastLines(errOut.String(), harness.TailLines))
	}
	return d, out.Bytes(), nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
