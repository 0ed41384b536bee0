package netutil

import "sync"

// Lender lends buffers of one size, at most a fixed number at a time, so
// that the memory peers can make it hold stays bounded whatever they do:
// a peer that stops reading keeps a borrowed buffer for as long as it
// stalls, and once all are out, Borrow says no and the caller does
// without (more, smaller reads or writes). Returned buffers are kept for
// reuse in a [sync.Pool]. A Lender is safe for concurrent use.
type Lender struct {
	size int
	out  chan struct{} // one token per buffer lent
	pool sync.Pool     // *[]byte
}

// NewLender returns a Lender of buffers of size bytes, at most max of them
// out at once.
func NewLender(size, max int) *Lender {
	return &Lender{size: size, out: make(chan struct{}, max)}
}

// Borrow returns an empty buffer with room for the Lender's size, or nil
// when all the Lender's buffers are out. Give it back with Return.
func (l *Lender) Borrow() *[]byte {
	select {
	case l.out <- struct{}{}:
	default:
		return nil
	}
	if b, ok := l.pool.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, l.size)
	return &b
}

// Return gives back a buffer from Borrow; b must not be used after.
func (l *Lender) Return(b *[]byte) {
	*b = (*b)[:0]
	l.pool.Put(b)
	<-l.out
}
