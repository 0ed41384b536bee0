package git

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/alkdev/alknet/core"
)

// agent is the agent capability value the server advertises.
const agent = "agent=alknet-git/1"

// ProtocolError is a failure the server reports to the client, in an ERR
// pkt-line before the advertisement or on the side band after it.
type ProtocolError struct {
	// Reason is what the client is told.
	Reason string
}

func (e *ProtocolError) Error() string { return e.Reason }

// protoErr returns a ProtocolError with a formatted reason.
func protoErr(format string, args ...any) error {
	return &ProtocolError{Reason: fmt.Sprintf(format, args...)}
}

// readLine reads one pkt-line: its payload without a trailing LF, or
// flush = true for a flush-pkt. The end of the stream is io.EOF; an
// oversized or malformed length is pktline.ErrInvalidPktLen.
func readLine(sc *pktline.Scanner) (line []byte, flush bool, err error) {
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, false, err
		}
		return nil, false, io.EOF
	}
	b := sc.Bytes()
	if len(b) == 0 {
		return nil, true, nil
	}
	return bytes.TrimSuffix(b, []byte("\n")), false, nil
}

// readSection reads pkt-lines up to a flush, handing each to parse, and
// returns how many it read. A stream that ends before the first line is
// not an error (the client only wanted the advertisement).
func readSection(sc *pktline.Scanner, parse func([]byte) error) (n int, err error) {
	for {
		line, flush, err := readLine(sc)
		if errors.Is(err, io.EOF) && n == 0 {
			return 0, nil
		}
		if err != nil || flush {
			return n, err
		}
		if err := parse(line); err != nil {
			return n, err
		}
		n++
	}
}

// writeERR writes an ERR pkt-line, which git prints as
// "fatal: remote error: <reason>".
func writeERR(w io.Writer, reason string) error {
	return pktline.NewEncoder(w).EncodeString("ERR " + reason + "\n")
}

// advertised is what an advertisement told the client.
type advertised struct {
	// tips are the object IDs the client may want.
	tips map[plumbing.Hash]bool
}

// advertise writes the reference advertisement of sto: HEAD first when
// withHead (upload-pack), every other reference sorted, the peeled value
// of annotated tags, then a flush. An empty repository advertises
// "capabilities^{}" so the client still learns the capabilities. It
// flushes w: the client waits for the advertisement.
func advertise(w *bufio.Writer, sto *filesystem.Storage, caps []string, withHead bool) (advertised, error) {
	adv := advertised{tips: make(map[plumbing.Hash]bool)}
	iter, err := sto.IterReferences()
	if err != nil {
		return adv, err
	}
	var refs []*plumbing.Reference
	err = iter.ForEach(func(r *plumbing.Reference) error {
		if r.Type() == plumbing.HashReference && validRefName(r.Name().String()) == nil {
			refs = append(refs, r)
		}
		return nil
	})
	if err != nil {
		return adv, err
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name() < refs[j].Name() })
	type line struct {
		hash plumbing.Hash
		name string
	}
	var lines []line
	caps = append([]string(nil), caps...)
	if withHead {
		if head, err := sto.Reference(plumbing.HEAD); err == nil && head.Type() == plumbing.SymbolicReference {
			if target, err := sto.Reference(head.Target()); err == nil && target.Type() == plumbing.HashReference {
				lines = append(lines, line{target.Hash(), "HEAD"})
				caps = append(caps, "symref=HEAD:"+head.Target().String())
			}
		}
	}
	for _, r := range refs {
		lines = append(lines, line{r.Hash(), r.Name().String()})
		if tag, err := object.GetTag(sto, r.Hash()); err == nil {
			if peeled, err := peel(sto, tag); err == nil {
				lines = append(lines, line{peeled, r.Name().String() + "^{}"})
			}
		}
	}
	enc := pktline.NewEncoder(w)
	capList := strings.Join(caps, " ")
	if len(lines) == 0 {
		err := enc.EncodeString(plumbing.ZeroHash.String() + " capabilities^{}\x00" + capList + "\n")
		if err != nil {
			return adv, err
		}
		return adv, flushAll(enc, w)
	}
	for i, l := range lines {
		adv.tips[l.hash] = true
		s := l.hash.String() + " " + l.name
		if i == 0 {
			s += "\x00" + capList
		}
		if err := enc.EncodeString(s + "\n"); err != nil {
			return adv, err
		}
	}
	return adv, flushAll(enc, w)
}

// flushAll writes a flush-pkt and sends what w buffered.
func flushAll(enc *pktline.Encoder, w *bufio.Writer) error {
	if err := enc.Flush(); err != nil {
		return err
	}
	return w.Flush()
}

// peel follows a chain of annotated tags to the object it ends at.
func peel(sto *filesystem.Storage, tag *object.Tag) (plumbing.Hash, error) {
	for range 16 {
		if tag.TargetType != plumbing.TagObject {
			return tag.Target, nil
		}
		next, err := object.GetTag(sto, tag.Target)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		tag = next
	}
	return plumbing.ZeroHash, errors.New("tag chain too long")
}

// parseHash parses a 40-digit lower-case hex object ID.
func parseHash(s string) (plumbing.Hash, error) {
	if len(s) != 40 {
		return plumbing.ZeroHash, fmt.Errorf("object id %q: want 40 hex digits", core.Clip(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return plumbing.ZeroHash, fmt.Errorf("object id %q: want 40 hex digits", core.Clip(s))
		}
	}
	return plumbing.NewHash(s), nil
}

// validRefName checks a reference name the way git check-ref-format does,
// for the names a push may update: "refs/" followed by components that are
// not empty, do not start with "." or end with ".lock", with no "..",
// "@{", control characters, space or any of ~^:?*[\.
func validRefName(name string) error {
	rest, ok := strings.CutPrefix(name, "refs/")
	if !ok || rest == "" || len(name) > 1024 {
		return fmt.Errorf("reference %q: must start with refs/", core.Clip(name))
	}
	if strings.Contains(name, "..") || strings.Contains(name, "@{") || strings.HasSuffix(name, ".") {
		return fmt.Errorf("reference %q: invalid name", core.Clip(name))
	}
	for _, part := range strings.Split(rest, "/") {
		if part == "" || part[0] == '.' || strings.HasSuffix(part, ".lock") {
			return fmt.Errorf("reference %q: invalid name", core.Clip(name))
		}
	}
	if strings.ContainsFunc(name, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune("~^:?*[\\", r)
	}) {
		return fmt.Errorf("reference %q: invalid character", core.Clip(name))
	}
	return nil
}

// sideband writes data on one side-band-64k channel, in pkt-lines of at
// most 65520 bytes.
type sideband struct {
	w  io.Writer
	ch byte
}

// maxSidebandData is the data of a full side-band-64k pkt-line: git's
// 65520-byte packet limit less the 4-byte length and the channel byte.
const maxSidebandData = 65520 - 4 - 1

func (s sideband) Write(p []byte) (int, error) {
	n := 0
	var hdr [5]byte
	for len(p) > 0 {
		chunk := p[:min(len(p), maxSidebandData)]
		copy(hdr[:4], fmt.Sprintf("%04x", len(chunk)+5))
		hdr[4] = s.ch
		if _, err := s.w.Write(hdr[:]); err != nil {
			return n, err
		}
		if _, err := s.w.Write(chunk); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}
