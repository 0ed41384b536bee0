package msg

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/msg/sphinx"
)

// Fragments: a message too large for one Sphinx payload travels as up to
// 255 fragments, each in its own packet, reassembled at the recipient's
// home node.
const (
	// fragHeader is message id, index, count, length.
	fragHeader = IDSize + 1 + 1 + 2
	// FragmentBytes is the data one fragment carries.
	FragmentBytes = sphinx.PlaintextSize - fragHeader
	// MaxFragments is the most fragments of one message.
	MaxFragments = 255
	// MaxMixnetEnvelopeBytes is the largest envelope the mixnet carries.
	MaxMixnetEnvelopeBytes = MaxFragments * FragmentBytes
)

// fragment splits an envelope into Sphinx plaintexts.
func fragment(env []byte) ([][]byte, error) {
	if len(env) == 0 || len(env) > MaxMixnetEnvelopeBytes {
		return nil, fmt.Errorf("msg: envelope of %d bytes does not fit the mixnet (limit %d)", len(env), MaxMixnetEnvelopeBytes)
	}
	var id [IDSize]byte
	rand.Read(id[:])
	count := (len(env) + FragmentBytes - 1) / FragmentBytes
	out := make([][]byte, 0, count)
	for i := range count {
		part := env[i*FragmentBytes : min(len(env), (i+1)*FragmentBytes)]
		b := make([]byte, sphinx.PlaintextSize)
		copy(b, id[:])
		b[IDSize] = byte(i)
		b[IDSize+1] = byte(count)
		binary.BigEndian.PutUint16(b[IDSize+2:], uint16(len(part)))
		copy(b[fragHeader:], part)
		out = append(out, b)
	}
	return out, nil
}

// Reassembly bounds.
const (
	reassemblyTTL      = 10 * time.Minute
	maxPartialMessages = 1024
)

// reassembler collects fragments per recipient and message id. Partial
// messages live in memory only, for reassemblyTTL.
type reassembler struct {
	clock func() time.Time

	mu      sync.Mutex
	partial map[partialKey]*partialMsg
}

type partialKey struct {
	to core.NodeID
	id [IDSize]byte
}

type partialMsg struct {
	parts   [][]byte
	got     int
	expires time.Time
}

func newReassembler(clock func() time.Time) *reassembler {
	return &reassembler{clock: clock, partial: make(map[partialKey]*partialMsg)}
}

// errFragment is a fragment that does not parse or fit its message.
var errFragment = errors.New("msg: bad fragment")

// add records one fragment for to and returns the whole envelope once
// every fragment arrived (nil before).
func (r *reassembler) add(to core.NodeID, b []byte) ([]byte, error) {
	if len(b) != sphinx.PlaintextSize {
		return nil, errFragment
	}
	var k partialKey
	k.to = to
	copy(k.id[:], b)
	idx, count := int(b[IDSize]), int(b[IDSize+1])
	n := int(binary.BigEndian.Uint16(b[IDSize+2:]))
	if count == 0 || idx >= count || n == 0 || n > FragmentBytes || (idx < count-1 && n != FragmentBytes) {
		return nil, errFragment
	}
	data := b[fragHeader : fragHeader+n]
	if count == 1 {
		return append([]byte{}, data...), nil
	}
	now := r.clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	for pk, p := range r.partial {
		if now.After(p.expires) {
			delete(r.partial, pk)
		}
	}
	p, ok := r.partial[k]
	if !ok {
		if len(r.partial) >= maxPartialMessages {
			return nil, fmt.Errorf("msg: too many partial messages")
		}
		p = &partialMsg{parts: make([][]byte, count), expires: now.Add(reassemblyTTL)}
		r.partial[k] = p
	}
	if len(p.parts) != count {
		return nil, errFragment
	}
	if p.parts[idx] != nil {
		return nil, nil // a repeat; the first copy stands
	}
	p.parts[idx] = append([]byte{}, data...)
	p.got++
	if p.got < count {
		return nil, nil
	}
	delete(r.partial, k)
	var env []byte
	for _, part := range p.parts {
		env = append(env, part...)
	}
	return env, nil
}
