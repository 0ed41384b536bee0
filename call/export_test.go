package call

// PeerShares reports whether the head's calls to the attached peer id go
// on a shared stream now.
func PeerShares(ps *Peers, id string) bool { return sharedWith(ps, id) != nil }

// sharedWith returns the stream the head shares with the attached peer id,
// or nil.
func sharedWith(ps *Peers, id string) *frameStream {
	ps.mu.Lock()
	p := ps.byID[id]
	ps.mu.Unlock()
	if p == nil || p.sess.out == nil {
		return nil
	}
	p.sess.out.mu.Lock()
	defer p.sess.out.mu.Unlock()
	return p.sess.out.fs
}

// AsOlderPeer returns opts for a client that answers call.shared as a
// peer that predates it does: with call.error, closing the stream.
func AsOlderPeer(opts Options) Options {
	opts.older = true
	return opts
}

// AbortShared ends the stream the head shares with the attached peer id,
// as a lost stream would end, and reports whether there was one.
func AbortShared(ps *Peers, id string) bool {
	fs := sharedWith(ps, id)
	if fs == nil {
		return false
	}
	fs.s.Abort(1)
	return true
}
