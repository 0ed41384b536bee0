package git

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/format/pktline"
)

const hexID = "0123456789abcdef0123456789abcdef01234567"

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"git-upload-pack /repo.git\x00host=example.com:4433\x00",          // typical
		"git-receive-pack /owner/repo.git\x00host=h\x00\x00version=2\x00", // extra parameters
		"git-upload-pack /repo.git\n",                                     // no host, trailing LF
		"git-upload-archive /repo.git\x00",                                // unknown service
		"git-upload-pack repo.git\x00",                                    // relative path
		"git-upload-pack /a\x01b\x00",                                     // control character
		"git-upload-pack /r.git\x00host=h\x00junk\x00",                    // junk after host
		"\xff\xfe", // not UTF-8
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := req.Encode(&buf); err != nil {
			return // longer than a pkt-line
		}
		sc := pktline.NewScanner(&buf)
		if !sc.Scan() {
			t.Fatalf("encoded request does not scan: %v", sc.Err())
		}
		again, err := ParseRequest(sc.Bytes())
		if err != nil || again.Service != req.Service || again.Path != req.Path || again.Host != req.Host || len(again.Extra) != len(req.Extra) {
			t.Fatalf("round trip of %+v gave %+v, %v", req, again, err)
		}
	})
}

func FuzzParseRepoPath(f *testing.F) {
	for _, s := range []string{"/repo.git", "/owner/repo.git", "/../etc.git", "/a/b/c.git", "/.hidden.git", "/a..b.git", "/x.lock.git", "/", "repo"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		name, err := ParseRepoPath(p)
		if err != nil {
			return
		}
		if strings.Contains(name, "..") || strings.HasPrefix(name, "/") || strings.Count(name, "/") > 1 || strings.ContainsAny(name, "\\\x00") {
			t.Fatalf("ParseRepoPath(%q) accepted %q", p, name)
		}
	})
}

// section runs readSection over b, checking that parse errors are
// ProtocolErrors.
func section(b []byte, parse func([]byte) error) {
	_, err := readSection(pktline.NewScanner(bytes.NewReader(b)), func(line []byte) error {
		err := parse(line)
		var pe *ProtocolError
		if err != nil && !errors.As(err, &pe) {
			panic("parse error is not a ProtocolError: " + err.Error())
		}
		return err
	})
	_ = err // malformed framing ends the section with an error; nothing to check
}

// frame encodes lines as pkt-lines followed by a flush.
func frame(lines ...string) []byte {
	var buf bytes.Buffer
	e := pktline.NewEncoder(&buf)
	for _, l := range lines {
		_ = e.EncodeString(l)
	}
	_ = e.Flush()
	return buf.Bytes()
}

func FuzzWantSection(f *testing.F) {
	f.Add(frame("want " + hexID + " side-band-64k ofs-delta\n")) // first want with capabilities
	f.Add(frame("want "+hexID+"\n", "want "+hexID+"\n"))         // two wants
	f.Add(frame("want "+hexID+"\n", "shallow "+hexID+"\n", "deepen 1\n"))
	f.Add(frame("deepen 0\n"))         // invalid depth
	f.Add(frame("want xyz\n"))         // bad object id
	f.Add(frame("filter blob:none\n")) // not advertised
	f.Add([]byte("ffff0000"))          // oversized length
	f.Add([]byte("0003"))              // length below header size
	f.Fuzz(func(t *testing.T, b []byte) {
		var req uploadRequest
		section(b, req.parseLine)
		if req.depth < 0 || req.depth > maxDepth || len(req.wants) > maxWants {
			t.Fatalf("bad request state %+v", req)
		}
	})
}

func FuzzCommandSection(f *testing.F) {
	zero := strings.Repeat("0", 40)
	f.Add(frame(zero + " " + hexID + " refs/heads/main\x00report-status atomic\n")) // create
	f.Add(frame(hexID+" "+zero+" refs/heads/x\x00delete-refs\n", hexID+" "+hexID+" refs/tags/v1\n"))
	f.Add(frame(zero + " " + zero + " refs/heads/main\x00\n"))  // nothing to do
	f.Add(frame(zero + " " + hexID + " refs/heads/../x\x00\n")) // bad ref name
	f.Add(frame("shallow " + hexID + "\n"))                     // shallow push
	f.Add(frame(hexID + " " + hexID + "\n"))                    // missing ref
	f.Fuzz(func(t *testing.T, b []byte) {
		var req pushRequest
		section(b, req.parseLine)
		for _, c := range req.cmds {
			if validRefName(c.ref) != nil || (c.old.IsZero() && c.new.IsZero()) {
				t.Fatalf("accepted bad command %+v", c)
			}
		}
	})
}

// TestReadLine checks pkt-line framing errors.
func TestReadLine(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		flush bool
		line  string
		err   error
	}{
		{"line", "0009hello", false, "hello", nil},
		{"line with LF", "000ahello\n", false, "hello", nil},
		{"flush", "0000", true, "", nil},
		{"end", "", false, "", io.EOF},
		{"oversized", "fff5" + strings.Repeat("a", 8), false, "", pktline.ErrInvalidPktLen},
		{"short length", "0003", false, "", pktline.ErrInvalidPktLen},
		{"not hex", "zzzz", false, "", pktline.ErrInvalidPktLen},
		{"truncated", "0010abc", false, "", io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			line, flush, err := readLine(pktline.NewScanner(strings.NewReader(c.in)))
			if string(line) != c.line || flush != c.flush || !errors.Is(err, c.err) {
				t.Errorf("readLine(%q) = %q, %v, %v; want %q, %v, %v", c.in, line, flush, err, c.line, c.flush, c.err)
			}
		})
	}
}
