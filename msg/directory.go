package msg

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg/sphinx"
)

// DefaultLayers is the number of mix layers a route crosses.
const DefaultLayers = 3

// MaxDirectoryBytes bounds an encoded directory.
const MaxDirectoryBytes = 1 << 20

// directoryMagic starts a signed directory; directoryContext is what the
// signature covers before the body.
const (
	directoryMagic   = "alkmixdir1"
	directoryContext = "alknet/msg mix directory v1\x00"
)

// MixDescriptor is one mix in a directory.
type MixDescriptor struct {
	// Node is the mix's node id.
	Node core.NodeID
	// Addr is where it listens ("host:port").
	Addr string
	// Key is its X25519 mix key for Epoch.
	Key *ecdh.PublicKey
	// Layer is its position in routes, 0 (entry) to Layers-1 (exit).
	Layer int
	// Epoch is the key epoch Key belongs to.
	Epoch uint64
}

// MixDirectory is the signed list of mixes senders pick routes from.
type MixDirectory struct {
	// Issued and Expires bound when the directory is valid.
	Issued, Expires time.Time
	// Layers is the number of layers; zero means DefaultLayers.
	Layers int
	// Mixes are the mixes, at least one per layer.
	Mixes []MixDescriptor
	// Signer is the directory node that signed it (set by Parse).
	Signer core.NodeID
}

// directoryJSON is the signed body.
type directoryJSON struct {
	Issued  int64     `json:"issued"`
	Expires int64     `json:"expires"`
	Layers  int       `json:"layers"`
	Mixes   []mixJSON `json:"mixes"`
}

type mixJSON struct {
	Node  core.NodeID `json:"node"`
	Addr  string      `json:"addr"`
	Key   string      `json:"key"`
	Layer int         `json:"layer"`
	Epoch uint64      `json:"epoch"`
}

// validate checks layers and entries.
func (d *MixDirectory) validate() error {
	layers := d.Layers
	if layers == 0 {
		layers = DefaultLayers
	}
	if layers < 1 || layers > sphinx.MaxHops {
		return fmt.Errorf("msg: directory: %d layers, want 1 to %d", layers, sphinx.MaxHops)
	}
	if !d.Expires.After(d.Issued) {
		return errors.New("msg: directory: expires before it is issued")
	}
	seen := make([]bool, layers)
	for i, m := range d.Mixes {
		if m.Node.IsZero() || m.Key == nil || m.Addr == "" {
			return fmt.Errorf("msg: directory: mix %d: node, key and addr are required", i)
		}
		if m.Layer < 0 || m.Layer >= layers {
			return fmt.Errorf("msg: directory: mix %d: layer %d outside 0..%d", i, m.Layer, layers-1)
		}
		seen[m.Layer] = true
	}
	if i := slices.Index(seen, false); i >= 0 {
		return fmt.Errorf("msg: directory: no mix in layer %d", i)
	}
	return nil
}

// Sign encodes the directory signed by a directory node's key.
func (d *MixDirectory) Sign(key ed25519.PrivateKey) ([]byte, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	j := directoryJSON{Issued: d.Issued.UnixMilli(), Expires: d.Expires.UnixMilli(), Layers: d.Layers}
	for _, m := range d.Mixes {
		j.Mixes = append(j.Mixes, mixJSON{m.Node, m.Addr, base64.RawURLEncoding.EncodeToString(m.Key.Bytes()), m.Layer, m.Epoch})
	}
	body, err := json.Marshal(j)
	if err != nil {
		return nil, err
	}
	signer, err := core.NodeIDFromPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	out := append([]byte(directoryMagic), signer.PublicKey()...)
	out = append(out, ed25519.Sign(key, append([]byte(directoryContext), body...))...)
	return append(out, body...), nil
}

// ParseDirectory decodes a signed directory, checks that one of trusted
// signed it and that it is valid at now.
func ParseDirectory(b []byte, trusted []core.NodeID, now time.Time) (*MixDirectory, error) {
	const fixed = len(directoryMagic) + ed25519.PublicKeySize + ed25519.SignatureSize
	if len(b) > MaxDirectoryBytes || len(b) < fixed || !bytes.HasPrefix(b, []byte(directoryMagic)) {
		return nil, errors.New("msg: directory: malformed")
	}
	signer, err := core.NodeIDFromPublicKey(ed25519.PublicKey(b[len(directoryMagic) : len(directoryMagic)+ed25519.PublicKeySize]))
	if err != nil {
		return nil, errors.New("msg: directory: malformed signer")
	}
	if !slices.Contains(trusted, signer) {
		return nil, fmt.Errorf("msg: directory: signer %s is not trusted", signer.ShortString())
	}
	sig, body := b[fixed-ed25519.SignatureSize:fixed], b[fixed:]
	if !ed25519.Verify(signer.PublicKey(), append([]byte(directoryContext), body...), sig) {
		return nil, errors.New("msg: directory: bad signature")
	}
	var j directoryJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("msg: directory: %w", err)
	}
	d := &MixDirectory{Issued: time.UnixMilli(j.Issued), Expires: time.UnixMilli(j.Expires), Layers: j.Layers, Signer: signer}
	for i, m := range j.Mixes {
		kb, err := base64.RawURLEncoding.DecodeString(m.Key)
		if err != nil {
			return nil, fmt.Errorf("msg: directory: mix %d: key: %w", i, err)
		}
		k, err := ecdh.X25519().NewPublicKey(kb)
		if err != nil {
			return nil, fmt.Errorf("msg: directory: mix %d: key: %w", i, err)
		}
		d.Mixes = append(d.Mixes, MixDescriptor{Node: m.Node, Addr: m.Addr, Key: k, Layer: m.Layer, Epoch: m.Epoch})
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	if now.Before(d.Issued) || !now.Before(d.Expires) {
		return nil, errors.New("msg: directory: not valid now")
	}
	return d, nil
}

// Route picks one mix per layer, uniformly at random.
func (d *MixDirectory) Route() ([]MixDescriptor, error) {
	layers := d.Layers
	if layers == 0 {
		layers = DefaultLayers
	}
	route := make([]MixDescriptor, layers)
	for l := range layers {
		var in []MixDescriptor
		for _, m := range d.Mixes {
			if m.Layer == l {
				in = append(in, m)
			}
		}
		if len(in) == 0 {
			return nil, fmt.Errorf("msg: directory: no mix in layer %d", l)
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(in))))
		if err != nil {
			return nil, err
		}
		route[l] = in[n.Int64()]
	}
	return route, nil
}

// Addr returns the address of a listed mix.
func (d *MixDirectory) Addr(node core.NodeID) (string, bool) {
	for _, m := range d.Mixes {
		if m.Node == node {
			return node.String() + "@" + m.Addr, true
		}
	}
	return "", false
}

// hops converts a route for the sphinx package.
func hops(route []MixDescriptor) []sphinx.Hop {
	out := make([]sphinx.Hop, len(route))
	for i, m := range route {
		copy(out[i].ID[:], m.Node.PublicKey())
		out[i].Key = m.Key
	}
	return out
}
