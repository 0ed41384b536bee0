package git

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"
)

// The services a request line may ask for.
const (
	// ServiceUploadPack serves clone, fetch and ls-remote.
	ServiceUploadPack = "git-upload-pack"
	// ServiceReceivePack serves push.
	ServiceReceivePack = "git-receive-pack"
)

// ErrBadRequest is wrapped by every error [ParseRequest] returns.
var ErrBadRequest = errors.New("bad request line")

// Request is a git daemon request line: the first pkt-line of a stream,
// "git-upload-pack /repo.git\x00host=example.com\x00" with optional extra
// parameters ("\x00version=2\x00") after an empty field.
type Request struct {
	// Service is ServiceUploadPack or ServiceReceivePack.
	Service string
	// Path is the repository path as sent, e.g. "/owner/repo.git".
	Path string
	// Host is the host parameter, empty when absent.
	Host string
	// Extra holds the extra parameters ("version=2"), in order.
	Extra []string
}

// ParseRequest parses the payload of a request line. It refuses unknown
// services, a missing or non-absolute path, control characters and
// malformed parameters; errors wrap [ErrBadRequest]. It does not validate
// the repository name (see [ParseRepoPath]).
func ParseRequest(payload []byte) (Request, error) {
	if !utf8.Valid(payload) {
		return Request{}, fmt.Errorf("%w: not UTF-8", ErrBadRequest)
	}
	payload = bytes.TrimSuffix(payload, []byte("\n"))
	fields := strings.Split(string(payload), "\x00")
	service, path, ok := strings.Cut(fields[0], " ")
	if !ok {
		return Request{}, fmt.Errorf("%w: want \"<service> <path>\"", ErrBadRequest)
	}
	if service != ServiceUploadPack && service != ServiceReceivePack {
		return Request{}, fmt.Errorf("%w: unknown service", ErrBadRequest)
	}
	if !strings.HasPrefix(path, "/") || strings.ContainsFunc(path, isControl) {
		return Request{}, fmt.Errorf("%w: path must be absolute and printable", ErrBadRequest)
	}
	req := Request{Service: service, Path: path}
	rest := fields[1:]
	// A terminating NUL leaves one empty field at the end.
	if n := len(rest); n > 0 && rest[n-1] == "" {
		rest = rest[:n-1]
	}
	if len(rest) > 0 && strings.HasPrefix(rest[0], "host=") {
		req.Host = strings.TrimPrefix(rest[0], "host=")
		rest = rest[1:]
	}
	if len(rest) > 0 {
		// Extra parameters follow an empty field.
		if rest[0] != "" {
			return Request{}, fmt.Errorf("%w: unexpected parameter", ErrBadRequest)
		}
		for _, p := range rest[1:] {
			if p == "" || strings.ContainsFunc(p, isControl) {
				return Request{}, fmt.Errorf("%w: malformed extra parameter", ErrBadRequest)
			}
			req.Extra = append(req.Extra, p)
		}
	}
	if strings.ContainsFunc(req.Host, isControl) {
		return Request{}, fmt.Errorf("%w: malformed host", ErrBadRequest)
	}
	return req, nil
}

// Encode writes r as one pkt-line.
func (r Request) Encode(w io.Writer) error {
	var b strings.Builder
	b.WriteString(r.Service + " " + r.Path + "\x00")
	if r.Host != "" {
		b.WriteString("host=" + r.Host + "\x00")
	}
	if len(r.Extra) > 0 {
		b.WriteString("\x00" + strings.Join(r.Extra, "\x00") + "\x00")
	}
	return pktline.NewEncoder(w).EncodeString(b.String())
}

func isControl(r rune) bool { return r < ' ' || r == 0x7f }
