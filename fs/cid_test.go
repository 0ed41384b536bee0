package fs

// The expected CIDs here are derived without boxo: a small encoder below
// writes the dag-pb and UnixFS protobufs by hand from their specifications
// (links first, each with Hash, Name and Tsize; UnixFS Type, filesize and
// blocksizes) and hashes them with crypto/sha256. The literals pinned next
// to it are what that encoder gives, and two of them are values IPFS
// publishes: the empty file and "hello world" as CIDv1 raw leaves, and the
// empty UnixFS directory.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/boxo/ipld/merkledag"
	ft "github.com/ipfs/boxo/ipld/unixfs"
	pb "github.com/ipfs/boxo/ipld/unixfs/pb"
)

// refNode is a node of the reference encoder: its binary CID, its CID
// text and its cumulative size (Tsize).
type refNode struct {
	cid   []byte
	text  string
	tsize uint64
}

func refCID(codec byte, block []byte) refNode {
	sum := sha256.Sum256(block)
	bin := append([]byte{0x01, codec, 0x12, 0x20}, sum[:]...)
	text := "b" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(bin))
	return refNode{cid: bin, text: text, tsize: uint64(len(block))}
}

func pbVarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func pbBytes(b []byte, field byte, v []byte) []byte {
	b = append(b, field<<3|2)
	b = pbVarint(b, uint64(len(v)))
	return append(b, v...)
}

// refPB encodes a dag-pb node (links first, then Data) and returns it with
// its Tsize.
func refPB(links []refNode, names []string, data []byte) refNode {
	var b []byte
	var sum uint64
	for i, l := range links {
		var lb []byte
		lb = pbBytes(lb, 1, l.cid)
		lb = pbBytes(lb, 2, []byte(names[i]))
		lb = append(lb, 3<<3)
		lb = pbVarint(lb, l.tsize)
		b = pbBytes(b, 2, lb)
		sum += l.tsize
	}
	b = pbBytes(b, 1, data)
	n := refCID(0x70, b)
	n.tsize += sum
	return n
}

// refFileData is the UnixFS Data of a file node with children.
func refFileData(size uint64, blocksizes []uint64) []byte {
	b := []byte{1 << 3, 2, 3 << 3}
	b = pbVarint(b, size)
	for _, s := range blocksizes {
		b = append(b, 4<<3)
		b = pbVarint(b, s)
	}
	return b
}

// refFile builds the balanced layout of `ipfs add --cid-version 1`: raw
// leaves of 256 KiB; a single chunk is the file; otherwise nodes of up to
// 174 children, the tree as shallow as it can be, filled left to right.
func refFile(data []byte) refNode {
	var leaves []refNode
	var sizes []uint64
	for off := 0; off == 0 || off < len(data); off += ChunkSize {
		chunk := data[off:min(off+ChunkSize, len(data))]
		leaves = append(leaves, refCID(0x55, chunk))
		sizes = append(sizes, uint64(len(chunk)))
	}
	if len(leaves) == 1 {
		return leaves[0]
	}
	depth, capacity := 1, 174
	for capacity < len(leaves) {
		depth++
		capacity *= 174
	}
	root, _, _ := refLevel(leaves, sizes, depth)
	return root
}

// refLevel builds one node of the given depth from the front of leaves and
// returns it, its file size and how many leaves it took.
func refLevel(leaves []refNode, sizes []uint64, depth int) (refNode, uint64, int) {
	var kids []refNode
	var kidSizes []uint64
	var total uint64
	used := 0
	for len(kids) < 174 && used < len(leaves) {
		if depth == 1 {
			kids, kidSizes = append(kids, leaves[used]), append(kidSizes, sizes[used])
			total += sizes[used]
			used++
			continue
		}
		n, sz, k := refLevel(leaves[used:], sizes[used:], depth-1)
		kids, kidSizes = append(kids, n), append(kidSizes, sz)
		total += sz
		used += k
	}
	return refPB(kids, make([]string, len(kids)), refFileData(total, kidSizes)), total, used
}

// refDir builds a basic UnixFS directory of the named entries (sorted).
func refDir(names []string, entries []refNode) refNode {
	return refPB(entries, names, []byte{1 << 3, 1})
}

func TestCIDs(t *testing.T) {
	s := openStore(t)
	multi := pattern("multi", 5<<20+123)
	two := pattern("two-level", 175*ChunkSize+1)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
		{"hello world", []byte("hello world"), "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"},
		{"one chunk", pattern("one", ChunkSize), "bafkreigjr66razksg2o723mhutwmhm4k7ptlzdl2lvgolx55f3hya46hni"},
		{"multi chunk 5 MiB", multi, "bafybeigc5jqstkyqxy2jtqdbbt5vpkcbctg4qurrvl45eyjn6v5iamzhiy"},
		{"two levels 175 chunks", two, "bafybeicgqkapg6uv2zareanb6ov5vrhuxxgijrmt4exfepxtgeevfss2l4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ref := refFile(tc.data).text
			if ref != tc.want {
				t.Errorf("reference encoder gives %s, pinned %s", ref, tc.want)
			}
			got := addFile(t, s, tc.data)
			if got.String() != tc.want {
				t.Errorf("Add = %s, want %s", got, tc.want)
			}
			var buf bytes.Buffer
			if _, err := s.Cat(context.Background(), got, &buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), tc.data) {
				t.Errorf("Cat returned %d bytes that differ from the %d added", buf.Len(), len(tc.data))
			}
		})
	}
}

func TestDirectoryCIDs(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()

	empty := t.TempDir()
	c, err := s.Add(ctx, empty, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const emptyDir = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"
	if got := c.String(); got != emptyDir || refDir(nil, nil).text != emptyDir {
		t.Errorf("empty directory = %s (reference %s), want %s", got, refDir(nil, nil).text, emptyDir)
	}

	big := pattern("dir-big", 3*ChunkSize+7)
	dir := writeTree(t, map[string][]byte{
		"a.txt":        []byte("hello world"),
		"b":            nil,
		"sub/big.bin":  big,
		"sub/deep/x":   []byte("x\n"),
		".hidden":      []byte("skipped unless Hidden"),
		"sub/.git/cfg": []byte("skipped"),
	})
	deep := refDir([]string{"x"}, []refNode{refFile([]byte("x\n"))})
	sub := refDir([]string{"big.bin", "deep"}, []refNode{refFile(big), deep})
	root := refDir([]string{"a.txt", "b", "sub"}, []refNode{refFile([]byte("hello world")), refFile(nil), sub})
	const want = "bafybeihmpfwbv3xharbszlevj46336ujdo5ryhostnno5bxmjrusev3tj4"
	if root.text != want {
		t.Errorf("reference encoder gives %s, pinned %s", root.text, want)
	}
	c, err = s.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.String() != want {
		t.Errorf("Add(dir) = %s, want %s", c, want)
	}
	hidden, err := s.Add(ctx, dir, AddOptions{Hidden: true})
	if err != nil {
		t.Fatal(err)
	}
	if hidden == c {
		t.Error("Hidden: true gave the same CID as without hidden files")
	}
}

// TestHAMTDirectory adds a directory whose links pass 256 KiB, so it must
// be a HAMT shard. No reference encoder covers HAMT here; the pinned CID
// guards against changes in what boxo builds.
func TestHAMTDirectory(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	dir := t.TempDir()
	const n = 4200 // 4200 × (len(name) 28 + raw CID 36) > 256 KiB
	for i := range n {
		name := fmt.Sprintf("entry-%022d", i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Add(ctx, dir, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.block(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	pn, err := merkledag.DecodeProtobuf(b.RawData())
	if err != nil {
		t.Fatal(err)
	}
	fsn, err := ft.FSNodeFromBytes(pn.Data())
	if err != nil {
		t.Fatal(err)
	}
	if fsn.Type() != pb.Data_HAMTShard {
		t.Fatalf("root type %s, want HAMTShard", fsn.Type())
	}
	if c.String() != "bafybeicbdzgfdulygaguker7cwtmntiwe5rdvptisc4ubz7cpeljfldltm" {
		t.Errorf("HAMT root = %s", c)
	}
	entries, err := s.Ls(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Errorf("ls: %d entries, want %d", len(entries), n)
	}
	name := fmt.Sprintf("entry-%022d", 1234)
	fc, err := s.Resolve(ctx, c, name)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Cat(ctx, fc, &buf); err != nil || buf.String() != name {
		t.Errorf("cat %s = %q, %v", name, buf.String(), err)
	}
}
