package gitbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// GitRepoSpec describes a generated git repository: Files text files in
// directories of 20, all created by the first commit, then one commit per
// edit, each rewriting EditLines lines of one file (in blocks of 40) with
// new text. Text is pseudo-random words from a fixed vocabulary, so it
// compresses about 2–3× and edits delta well against the previous version.
// The same spec always gives the same commits.
type GitRepoSpec struct {
	// Commits on main, including the first; at least 2.
	Commits int
	// Files is the number of files; at least 1.
	Files int
	// FileLines is the number of lines per file (about 64 bytes each).
	FileLines int
	// EditLines is how many lines each commit after the first rewrites; at
	// most FileLines.
	EditLines int
	// Seed seeds the text.
	Seed uint64
}

// DefaultGitRepo is the benchmark repository: 5 000 commits over 400
// files of 64 KiB, 73 MB of packed objects (about 3 minutes to generate
// on a busy 2-core machine).
var DefaultGitRepo = GitRepoSpec{Commits: 5000, Files: 400, FileLines: 1024, EditLines: 320, Seed: 1}

// GitRepoInfo describes a generated repository.
type GitRepoInfo struct {
	// Dir is the bare repository.
	Dir string
	// commits is the number of commits on main.
	commits int
	// packBytes is the size of its packs (one after the repack).
	PackBytes int64
	// cached is true when Dir existed already.
	cached bool
}

// gitRepoFormat changes when the generator does, so that caches of an
// older generator are not reused.
const gitRepoFormat = 1

// name is the cache directory name of spec.
func (s GitRepoSpec) name() string {
	return fmt.Sprintf("git-v%d-c%d-f%d-l%d-e%d-s%d.git", gitRepoFormat, s.Commits, s.Files, s.FileLines, s.EditLines, s.Seed)
}

func (s GitRepoSpec) validate() error {
	if s.Commits < 2 || s.Files < 1 || s.FileLines < 1 || s.EditLines < 1 || s.EditLines > s.FileLines {
		return fmt.Errorf("bench: git repo spec %+v: want Commits ≥ 2, Files ≥ 1 and 1 ≤ EditLines ≤ FileLines", s)
	}
	return nil
}

// GitRepoCache returns the directory where generated repositories are
// kept: $ALKNET_BENCH_CACHE, else the user cache directory's alknet-bench,
// else the temporary directory's.
func GitRepoCache() string {
	if d := os.Getenv("ALKNET_BENCH_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "alknet-bench")
	}
	return filepath.Join(os.TempDir(), "alknet-bench")
}

// GenerateGitRepo returns the bare repository of spec under cacheDir,
// generating it first (git fast-import, then git repack -a -d -f) unless
// it is there already. A generation that fails leaves no repository behind.
func GenerateGitRepo(ctx context.Context, cacheDir string, spec GitRepoSpec) (GitRepoInfo, error) {
	if err := spec.validate(); err != nil {
		return GitRepoInfo{}, err
	}
	info := GitRepoInfo{Dir: filepath.Join(cacheDir, spec.name()), commits: spec.Commits}
	if _, err := os.Stat(filepath.Join(info.Dir, "objects")); err == nil {
		info.cached = true
		info.PackBytes, err = packBytes(info.Dir)
		return info, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return info, fmt.Errorf("bench: git repo: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, "generating-")
	if err != nil {
		return info, fmt.Errorf("bench: git repo: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := gitRun(ctx, "", nil, "init", "-q", "--bare", "-b", "main", tmp); err != nil {
		return info, err
	}
	if err := fastImport(ctx, tmp, func(w io.Writer) error { return writeHistory(w, spec) }); err != nil {
		return info, err
	}
	if err := gitRun(ctx, tmp, nil, "repack", "-q", "-a", "-d", "-f", "--window=10", "--depth=50"); err != nil {
		return info, err
	}
	if err := os.Rename(tmp, info.Dir); err != nil {
		return info, fmt.Errorf("bench: git repo: %w", err)
	}
	info.PackBytes, err = packBytes(info.Dir)
	return info, err
}

// fastImport runs `git fast-import` in the repository dir on the stream
// that write writes.
func fastImport(ctx context.Context, dir string, write func(io.Writer) error) error {
	cmd := exec.CommandContext(ctx, "git", "fast-import", "--quiet", "--done")
	cmd.Dir = dir
	cmd.Env = GitEnv(nil)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: git fast-import: %w", err)
	}
	werr := write(in)
	if err := errors.Join(werr, in.Close(), cmd.Wait()); err != nil {
		return fmt.Errorf("bench: git fast-import: %w\n%s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// writeHistory writes spec's commits as a fast-import stream.
func writeHistory(w io.Writer, spec GitRepoSpec) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	t := newTextGen(spec.Seed)
	files := make([][]string, spec.Files)
	var sb strings.Builder
	for i := range files {
		files[i] = make([]string, spec.FileLines)
		for j := range files[i] {
			files[i][j] = t.line()
		}
	}
	for c := range spec.Commits {
		var changed []int
		if c == 0 {
			for i := range files {
				changed = append(changed, i)
			}
		} else {
			f := t.r.IntN(spec.Files)
			for n := 0; n < spec.EditLines; n += 40 {
				start := t.r.IntN(spec.FileLines)
				for j := start; j < min(start+40, start+spec.EditLines-n, spec.FileLines); j++ {
					files[f][j] = t.line()
				}
			}
			changed = []int{f}
		}
		msg := fmt.Sprintf("commit %d\n\n%s\n", c, t.line())
		fmt.Fprintf(bw, "commit refs/heads/main\nmark :%d\n", c+1)
		writeSignature(bw, "author", int64(c))
		writeSignature(bw, "committer", int64(c))
		fmt.Fprintf(bw, "data %d\n%s", len(msg), msg)
		if c > 0 {
			fmt.Fprintf(bw, "from :%d\n", c)
		}
		for _, f := range changed {
			sb.Reset()
			for _, l := range files[f] {
				sb.WriteString(l)
			}
			fmt.Fprintf(bw, "M 100644 inline %s\ndata %d\n%s\n", filePath(f), sb.Len(), sb.String())
		}
	}
	if _, err := bw.WriteString("done\n"); err != nil {
		return err
	}
	return bw.Flush()
}

// writeSignature writes an author or committer line of commit c: fixed
// names, one minute apart.
func writeSignature(w io.Writer, kind string, c int64) {
	fmt.Fprintf(w, "%s Bench <bench@example.com> %d +0000\n", kind, 1_700_000_000+60*c)
}

// filePath is the path of file i: twenty files per directory.
func filePath(i int) string {
	return fmt.Sprintf("src/d%03d/f%02d.txt", i/20, i%20)
}

// textGen makes lines of pseudo-random words.
type textGen struct {
	r     *rand.Rand
	words []string
}

func newTextGen(seed uint64) *textGen {
	t := &textGen{r: rand.New(rand.NewPCG(seed, 0x616c6b6e6574))}
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	for range 2048 {
		b := make([]byte, 2+t.r.IntN(8))
		for i := range b {
			// Favour common letters: the square of a uniform index.
			k := t.r.IntN(len(letters))
			b[i] = letters[k*k/len(letters)]
		}
		t.words = append(t.words, string(b))
	}
	return t
}

// line returns words up to about 64 bytes, ending in a newline.
func (t *textGen) line() string {
	var sb strings.Builder
	for sb.Len() < 58 {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(t.words[t.r.IntN(len(t.words))])
	}
	sb.WriteByte('\n')
	return sb.String()
}

// packBytes sums the sizes of dir's pack files.
func packBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(filepath.Join(dir, "objects", "pack"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, ".pack") {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("bench: git repo: %w", err)
	}
	return n, nil
}

// GitEnv is the environment the benchmark runs git in: no user or system
// configuration, a fixed identity, no prompts; extra is added last.
func GitEnv(extra []string) []string {
	env := append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Bench", "GIT_AUTHOR_EMAIL=bench@example.com",
		"GIT_COMMITTER_NAME=Bench", "GIT_COMMITTER_EMAIL=bench@example.com")
	return append(env, extra...)
}

// gitRun runs git in dir (the current directory if empty) with gitEnv(env)
// and returns an error carrying its output if it fails.
func gitRun(ctx context.Context, dir string, env []string, args ...string) error {
	_, err := GitOutput(ctx, dir, env, args...)
	return err
}

// GitOutput is gitRun returning standard output, trimmed.
func GitOutput(ctx context.Context, dir string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = GitEnv(env)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bench: git %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// countCommits returns the number of commits reachable from rev in the
// repository dir.
func countCommits(ctx context.Context, dir, rev string) (int, error) {
	out, err := GitOutput(ctx, dir, nil, "rev-list", "--count", rev)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out)
}

// SmallGitRepo is a repository generated in well under a second, for
// tests.
var SmallGitRepo = GitRepoSpec{Commits: 30, Files: 10, FileLines: 64, EditLines: 40, Seed: 7}
