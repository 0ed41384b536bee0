package git

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/alkdev/alknet/core"
)

// uploadCaps are the capabilities upload-pack advertises. Negotiation is
// git's basic one (no multi_ack): the server acknowledges the first common
// object and the client then stops sending haves.
var uploadCaps = []string{"side-band-64k", "ofs-delta", "shallow", "no-progress", agent}

// maxDepth bounds a "deepen" request.
const maxDepth = 1 << 30

// maxWants bounds the wants and shallows of one fetch.
const maxWants = 1 << 16

// uploadRequest is the want section of a fetch.
type uploadRequest struct {
	wants    []plumbing.Hash
	caps     []string
	shallows []plumbing.Hash
	depth    int
}

// parseLine adds one pkt-line of the want section: "want <id>[ caps]"
// (capabilities on the first want only), "shallow <id>" or "deepen <n>".
// Other requests are refused: the server does not advertise them.
func (req *uploadRequest) parseLine(line []byte) error {
	if len(req.wants)+len(req.shallows) >= maxWants {
		return protoErr("too many wants")
	}
	cmd, arg, _ := strings.Cut(string(line), " ")
	switch cmd {
	case "want":
		id, caps, _ := strings.Cut(arg, " ")
		h, err := parseHash(id)
		if err != nil {
			return protoErr("want: %v", err)
		}
		if len(req.wants) == 0 && caps != "" {
			req.caps = strings.Fields(caps)
		} else if caps != "" {
			return protoErr("want: capabilities are allowed on the first want only")
		}
		req.wants = append(req.wants, h)
	case "shallow":
		h, err := parseHash(arg)
		if err != nil {
			return protoErr("shallow: %v", err)
		}
		req.shallows = append(req.shallows, h)
	case "deepen":
		n, err := strconv.Atoi(arg)
		if err != nil || n <= 0 || n > maxDepth {
			return protoErr("deepen: want a depth from 1 to %d", maxDepth)
		}
		req.depth = n
	default:
		return protoErr("upload-pack: unsupported request %q", core.Clip(cmd))
	}
	return nil
}

// has reports whether the client asked for capability c.
func (req *uploadRequest) has(c string) bool { return slices.Contains(req.caps, c) }

// session is one request's stream, buffered both ways.
type session struct {
	r   *bufio.Reader
	sc  *pktline.Scanner
	w   *bufio.Writer
	sto *filesystem.Storage
}

// uploadPack serves a fetch (or ls-remote) after the request line.
func (s *Server) uploadPack(ctx context.Context, sess *session) error {
	adv, err := advertise(sess.w, sess.sto, uploadCaps, true)
	if err != nil {
		return err
	}
	var req uploadRequest
	if _, err := readSection(sess.sc, req.parseLine); err != nil {
		return err
	}
	if len(req.wants) == 0 {
		return nil // ls-remote, or nothing wanted: the client is up to date
	}
	for _, h := range req.wants {
		if !adv.tips[h] {
			return protoErr("upload-pack: not our ref %s", h)
		}
	}
	w := &walker{sto: sess.sto, clientShallow: make(map[plumbing.Hash]bool)}
	for _, h := range req.shallows {
		w.clientShallow[h] = true
	}
	if req.depth > 0 {
		if err := w.deepen(req.wants, req.depth); err != nil {
			return err
		}
		enc := pktline.NewEncoder(sess.w)
		for _, h := range w.shallow {
			if err := enc.EncodeString("shallow " + h.String() + "\n"); err != nil {
				return err
			}
		}
		for _, h := range w.unshallow {
			if err := enc.EncodeString("unshallow " + h.String() + "\n"); err != nil {
				return err
			}
		}
		if err := flushAll(enc, sess.w); err != nil {
			return err
		}
	}
	common, err := negotiate(sess.sc, sess.w, w)
	if err != nil {
		return err
	}
	objs, err := w.objects(req.wants, common, req.depth)
	if err != nil {
		return err
	}
	var out io.Writer = sess.w
	if req.has("side-band-64k") {
		out = sideband{w: sess.w, ch: 1}
	}
	_, err = packfile.NewEncoder(out, sess.sto, false).Encode(objs, uint(s.cfg.PackWindow))
	if err != nil {
		if req.has("side-band-64k") {
			_, _ = (sideband{w: sess.w, ch: 3}).Write([]byte("pack failed\n"))
			_ = sess.w.Flush()
		}
		return fmt.Errorf("encode pack: %w", err)
	}
	if req.has("side-band-64k") {
		if err := pktline.NewEncoder(sess.w).Flush(); err != nil {
			return err
		}
	}
	return sess.w.Flush()
}

// negotiate reads the client's haves until "done", answering as git's
// upload-pack does without multi_ack: "ACK <id>" for the first common
// object, and "NAK" for each flush (and for "done") while none was found.
// It returns the common objects.
func negotiate(sc *pktline.Scanner, w *bufio.Writer, wk *walker) ([]plumbing.Hash, error) {
	var common []plumbing.Hash
	enc := pktline.NewEncoder(w)
	for {
		line, flush, err := readLine(sc)
		if err != nil {
			return nil, err
		}
		switch {
		case flush:
			if len(common) == 0 {
				if err := enc.EncodeString("NAK\n"); err != nil {
					return nil, err
				}
			}
			if err := w.Flush(); err != nil {
				return nil, err
			}
		case string(line) == "done":
			if len(common) == 0 {
				if err := enc.EncodeString("NAK\n"); err != nil {
					return nil, err
				}
			}
			return common, w.Flush()
		default:
			arg, ok := strings.CutPrefix(string(line), "have ")
			if !ok {
				return nil, protoErr("upload-pack: expected have or done, got %q", core.Clip(string(line)))
			}
			h, err := parseHash(arg)
			if err != nil {
				return nil, protoErr("have: %v", err)
			}
			if len(common) >= maxWants || !wk.isCommit(h) {
				continue
			}
			common = append(common, h)
			if len(common) == 1 {
				if err := enc.EncodeString("ACK " + h.String() + "\n"); err != nil {
					return nil, err
				}
			}
		}
	}
}
