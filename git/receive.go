package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/alkdev/alknet/core"
)

// receiveCaps are the capabilities receive-pack advertises. no-thin asks
// the client for self-contained packs.
var receiveCaps = []string{"report-status", "delete-refs", "ofs-delta", "atomic", "no-thin", "quiet", agent}

// maxCommands bounds the reference updates of one push.
const maxCommands = 1 << 14

// command is one reference update of a push.
type command struct {
	old, new plumbing.Hash
	ref      string
	// status is empty while the command is accepted, else the reason it
	// was refused.
	status string
}

// pushRequest is the command section of a push.
type pushRequest struct {
	cmds []*command
	caps []string
}

// parseLine adds one pkt-line of the command section:
// "<old> <new> <ref>", the first one followed by NUL and capabilities.
func (req *pushRequest) parseLine(line []byte) error {
	if len(req.cmds) >= maxCommands {
		return protoErr("too many reference updates")
	}
	s := string(line)
	if strings.HasPrefix(s, "shallow ") {
		return protoErr("receive-pack: pushing from a shallow clone is not supported")
	}
	if len(req.cmds) == 0 {
		var caps string
		s, caps, _ = strings.Cut(s, "\x00")
		req.caps = strings.Fields(caps)
	}
	f := strings.Split(s, " ")
	if len(f) != 3 {
		return protoErr("receive-pack: malformed command %q", core.Clip(s))
	}
	old, err := parseHash(f[0])
	if err != nil {
		return protoErr("receive-pack: %v", err)
	}
	nw, err := parseHash(f[1])
	if err != nil {
		return protoErr("receive-pack: %v", err)
	}
	if err := validRefName(f[2]); err != nil {
		return protoErr("receive-pack: %v", err)
	}
	if old.IsZero() && nw.IsZero() {
		return protoErr("receive-pack: %s: nothing to do", f[2])
	}
	if slices.ContainsFunc(req.cmds, func(c *command) bool { return c.ref == f[2] }) {
		return protoErr("receive-pack: %s updated twice", f[2])
	}
	req.cmds = append(req.cmds, &command{old: old, new: nw, ref: f[2]})
	return nil
}

// pushTarget is the repository a push writes to.
type pushTarget struct {
	name string
	rule Repo
	id   *core.Identity
}

// readPush advertises the refs with caps and reads the client's update
// commands; none means the client only looked at the refs.
func readPush(sess *session, caps []string) (pushRequest, error) {
	var req pushRequest
	if _, err := advertise(sess.w, sess.sto, caps, false); err != nil {
		return req, err
	}
	_, err := readSection(sess.sc, req.parseLine)
	return req, err
}

// refuseAll marks every command not refused yet as refused because another
// one was, as an atomic push needs.
func refuseAll(cmds []*command) {
	for _, c := range cmds {
		if c.status == "" {
			c.status = "atomic push failed"
		}
	}
}

// receivePack serves a push after the request line.
func (s *Server) receivePack(ctx context.Context, sess *session, t pushTarget) error {
	req, err := readPush(sess, receiveCaps)
	if err != nil || len(req.cmds) == 0 {
		return err
	}
	unpack := "ok"
	if slices.ContainsFunc(req.cmds, func(c *command) bool { return !c.new.IsZero() }) {
		if err := receivePackfile(ctx, sess.r, sess.sto, s.cfg.MaxPackBytes); err != nil {
			unpack = unpackFailure(err)
			for _, c := range req.cmds {
				c.status = "unpacker error"
			}
		}
	}
	var events []Event
	if unpack == "ok" {
		events = s.update(sess.sto, t, req.cmds, slices.Contains(req.caps, "atomic"))
	}
	if slices.Contains(req.caps, "report-status") {
		if err := report(sess.w, unpack, req.cmds); err != nil {
			return err
		}
	}
	if len(events) > 0 {
		s.events.publish(events)
	}
	return sess.w.Flush()
}

// report writes the report-status section.
func report(w io.Writer, unpack string, cmds []*command) error {
	enc := pktline.NewEncoder(w)
	if err := enc.EncodeString("unpack " + unpack + "\n"); err != nil {
		return err
	}
	for _, c := range cmds {
		line := "ok " + c.ref + "\n"
		if c.status != "" {
			line = "ng " + c.ref + " " + c.status + "\n"
		}
		if err := enc.EncodeString(line); err != nil {
			return err
		}
	}
	return enc.Flush()
}

// update checks and applies the commands under the repository's write
// lock, so pushes to one repository are serialized. Accepted commands are
// applied all or none: if a write fails, those already applied are undone.
// With atomic, one refused command refuses all. It returns an event per
// applied command.
func (s *Server) update(sto *filesystem.Storage, t pushTarget, cmds []*command, atomic bool) []Event {
	l := s.repos.lock(t.name)
	l.Lock()
	defer l.Unlock()
	refused := false
	for _, c := range cmds {
		c.status = check(sto, t.rule, c)
		refused = refused || c.status != ""
	}
	if atomic && refused {
		refuseAll(cmds)
		return nil
	}
	var applied []*command
	for _, c := range cmds {
		if c.status != "" {
			continue
		}
		if err := apply(sto, c); err != nil {
			s.cfg.Logger.Error("git ref update failed", "repo", t.name, "err", err)
			for _, a := range slices.Backward(applied) {
				if err := undo(sto, a); err != nil {
					s.cfg.Logger.Error("git ref rollback failed", "repo", t.name, "err", err)
				}
			}
			for _, c := range cmds {
				if c.status == "" {
					c.status = "failed to update refs"
				}
			}
			return nil
		}
		applied = append(applied, c)
	}
	return t.events(applied)
}

// events returns an event per command of cmds that was applied (whose
// status is empty).
func (t pushTarget) events(cmds []*command) []Event {
	now := time.Now().UTC()
	var events []Event
	for _, c := range cmds {
		if c.status == "" {
			events = append(events, Event{Repo: t.name, Ref: c.ref, Old: c.old.String(), New: c.new.String(), Pusher: t.id.String(), Time: now})
		}
	}
	return events
}

// check returns why c is refused, or "" if it may be applied.
func check(sto *filesystem.Storage, rule Repo, c *command) string {
	name := plumbing.ReferenceName(c.ref)
	current := plumbing.ZeroHash
	if ref, err := sto.Reference(name); err == nil {
		current = ref.Hash()
	}
	if current != c.old {
		return "stale info (fetch first)"
	}
	branch := strings.HasPrefix(c.ref, "refs/heads/")
	if c.new.IsZero() {
		if rule.protected(c.ref) {
			return "protected branch may not be deleted"
		}
		return ""
	}
	o, err := sto.EncodedObject(plumbing.AnyObject, c.new)
	if err != nil {
		return "missing object"
	}
	if branch && o.Type() != plumbing.CommitObject {
		return "branch must point at a commit"
	}
	if c.old.IsZero() {
		return ""
	}
	switch {
	case branch:
		if isAncestor(sto, c.old, c.new) {
			return ""
		}
		if rule.protected(c.ref) {
			return "protected branch: non-fast-forward"
		}
		if !rule.AllowForce {
			return "non-fast-forward"
		}
	case strings.HasPrefix(c.ref, "refs/tags/") && !rule.AllowForce:
		return "tag already exists"
	}
	return ""
}

// isAncestor reports whether commit old is reachable from commit new.
func isAncestor(sto *filesystem.Storage, old, new plumbing.Hash) bool {
	seen := make(map[plumbing.Hash]bool)
	queue := []plumbing.Hash{new}
	for len(queue) > 0 {
		h := queue[0]
		queue = queue[1:]
		if h == old {
			return true
		}
		if seen[h] {
			continue
		}
		seen[h] = true
		c, err := object.GetCommit(sto, h)
		if err != nil {
			continue
		}
		queue = append(queue, c.ParentHashes...)
	}
	return false
}

// apply writes one checked command.
func apply(sto *filesystem.Storage, c *command) error {
	name := plumbing.ReferenceName(c.ref)
	if c.new.IsZero() {
		return sto.RemoveReference(name)
	}
	var old *plumbing.Reference
	if !c.old.IsZero() {
		old = plumbing.NewHashReference(name, c.old)
	}
	return sto.CheckAndSetReference(plumbing.NewHashReference(name, c.new), old)
}

// undo reverts an applied command.
func undo(sto *filesystem.Storage, c *command) error {
	name := plumbing.ReferenceName(c.ref)
	if c.old.IsZero() {
		return sto.RemoveReference(name)
	}
	return sto.SetReference(plumbing.NewHashReference(name, c.old))
}

// errPackTooLarge reports a push over [Config.MaxPackBytes].
var errPackTooLarge = errors.New("pack exceeds the size limit")

// unpackFailure is the unpack status reported for a pack that could not
// be read.
func unpackFailure(err error) string {
	if errors.Is(err, errPackTooLarge) {
		return err.Error()
	}
	return "unpack failed"
}

// receivePackfile stores the pack that follows the commands in the
// repository's pack directory, where go-git indexes it.
func receivePackfile(ctx context.Context, r io.Reader, sto *filesystem.Storage, max int64) (err error) {
	pw, err := sto.PackfileWriter()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := pw.Close(); err == nil {
			err = cerr
		}
	}()
	return copyPack(ctx, r, pw, max)
}

// copyPack copies one pack of at most max bytes from r to w. It reads
// exactly the pack (header, objects, checksum), so it does not wait for
// the client to close its side.
func copyPack(ctx context.Context, r io.Reader, w io.Writer, max int64) error {
	lr := &limitedReader{r: r, n: max}
	sc := packfile.NewScanner(io.TeeReader(lr, w))
	_, n, err := sc.Header()
	if err != nil {
		return fmt.Errorf("pack header: %w", err)
	}
	for i := uint32(0); i < n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := sc.NextObjectHeader(); err != nil {
			return fmt.Errorf("pack object %d: %w", i, err)
		}
		if _, _, err := sc.NextObject(io.Discard); err != nil {
			return fmt.Errorf("pack object %d: %w", i, err)
		}
	}
	if _, err := sc.Checksum(); err != nil {
		return fmt.Errorf("pack checksum: %w", err)
	}
	return nil
}

// limitedReader fails with errPackTooLarge once n bytes were read.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errPackTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
