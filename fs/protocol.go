package fs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/alkdev/alknet/core"
	"github.com/ipfs/go-cid"
)

// ALPN is the protocol the transfer handler serves.
const ALPN = "alknet/fs"

// Protocol limits.
const (
	// MaxRequestBytes bounds a request frame (a get's have list makes it
	// large): 8 MiB.
	MaxRequestBytes = 8 << 20
	// MaxAnonRequestBytes bounds a request frame from an anonymous peer
	// (a public store's reader): 64 KiB, a have list of ~1,700 CIDs.
	MaxAnonRequestBytes = 64 << 10
	// MaxHave bounds the have list of a get.
	MaxHave = 100_000
	// MaxHasCIDs bounds the CIDs of one has request.
	MaxHasCIDs = 4096
	// maxPath bounds a request path.
	maxPath = 4096
)

// Operations of the alknet/fs protocol.
const (
	OpGet  = "get"
	OpPut  = "put"
	OpHas  = "has"
	OpStat = "stat"
)

// Request is the first frame of an alknet/fs stream: a 4-byte big-endian
// length, then this JSON object. See docs/protocols/fs.md.
type Request struct {
	// Op is get, put, has or stat.
	Op string `json:"op"`
	// Root is the DAG a get or stat is about, or the root a put must carry.
	Root string `json:"root,omitempty"`
	// Path is resolved from Root through directories (get, stat).
	Path string `json:"path,omitempty"`
	// Range selects bytes of a file (get).
	Range *Range `json:"range,omitempty"`
	// Have lists blocks the requester holds; a get does not send them.
	Have []string `json:"have,omitempty"`
	// CIDs are the blocks a has asks about.
	CIDs []string `json:"cids,omitempty"`
	// Pin names the pin a put sets on its root.
	Pin string `json:"pin,omitempty"`
}

// request is a decoded, validated Request.
type request struct {
	op   string
	root cid.Cid
	path string
	rng  *Range
	have []cid.Cid
	cids []cid.Cid
	pin  string
}

// Response is the answer frame. A failed request has Error set and nothing
// follows; a successful get is followed by the CAR stream.
type Response struct {
	// Error is set when the request failed.
	Error *RemoteError `json:"error,omitempty"`
	// Have answers a has, one entry per asked CID.
	Have []bool `json:"have,omitempty"`
	// Stat answers a stat.
	Stat *Stat `json:"stat,omitempty"`
	// Root and Transfer answer a put.
	Root     string         `json:"root,omitempty"`
	Transfer *TransferStats `json:"transfer,omitempty"`
}

// DecodeRequest decodes and validates a request frame body.
func DecodeRequest(body []byte) (Request, error) {
	var r Request
	_, err := decodeRequest(body, &r)
	return r, err
}

func decodeRequest(body []byte, r *Request) (request, error) {
	var q request
	if !utf8.Valid(body) {
		return q, errors.New("request is not UTF-8")
	}
	if err := json.Unmarshal(body, r); err != nil {
		return q, fmt.Errorf("request: %w", err)
	}
	q.op, q.path, q.rng, q.pin = r.Op, r.Path, r.Range, r.Pin
	if len(r.Path) > maxPath {
		return q, fmt.Errorf("path longer than %d bytes", maxPath)
	}
	var err error
	switch r.Op {
	case OpGet, OpStat:
		if q.root, err = cid.Decode(r.Root); err != nil {
			return q, fmt.Errorf("root: %w", err)
		}
		if r.Op == OpStat && (r.Range != nil || len(r.Have) > 0) {
			return q, errors.New("stat takes no range or have")
		}
	case OpPut:
		if r.Root != "" {
			if q.root, err = cid.Decode(r.Root); err != nil {
				return q, fmt.Errorf("root: %w", err)
			}
		}
		if r.Path != "" || r.Range != nil || len(r.Have) > 0 {
			return q, errors.New("put takes no path, range or have")
		}
		if r.Pin != "" && !pinName.MatchString(r.Pin) {
			return q, fmt.Errorf("pin name %q is not valid", r.Pin)
		}
	case OpHas:
		if len(r.CIDs) == 0 || len(r.CIDs) > MaxHasCIDs {
			return q, fmt.Errorf("has takes 1..%d cids, got %d", MaxHasCIDs, len(r.CIDs))
		}
		if q.cids, err = decodeCIDs(r.CIDs); err != nil {
			return q, err
		}
	default:
		return q, fmt.Errorf("unknown op %q", r.Op)
	}
	if r.Op != OpPut && r.Pin != "" {
		return q, fmt.Errorf("%s takes no pin", r.Op)
	}
	if len(r.Have) > MaxHave {
		return q, fmt.Errorf("have lists %d cids, limit %d", len(r.Have), MaxHave)
	}
	if q.have, err = decodeCIDs(r.Have); err != nil {
		return q, err
	}
	return q, nil
}

func decodeCIDs(ss []string) ([]cid.Cid, error) {
	out := make([]cid.Cid, len(ss))
	for i, s := range ss {
		c, err := cid.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("cid %d: %w", i, err)
		}
		out[i] = c
	}
	return out, nil
}

// writeFrame writes v as one JSON frame, framed by core's codec.
func writeFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(core.AppendFrame(nil, body))
	return err
}

// readResponse reads and decodes an answer frame; a failed answer becomes
// its *RemoteError.
func readResponse(r io.Reader) (Response, error) {
	body, err := core.FrameLimits{}.ReadFrame(r, MaxRequestBytes)
	if err != nil {
		return Response{}, fmt.Errorf("fs: read answer: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(body, &resp); err != nil {
		return Response{}, fmt.Errorf("fs: decode answer: %w", err)
	}
	if resp.Error != nil {
		return resp, resp.Error
	}
	return resp, nil
}

func cidStrings(cs []cid.Cid) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}
