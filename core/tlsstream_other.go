//go:build !unix

package core

// readsWithoutWaiting: no tlsSocket here, a TLS stream reads a record at a
// time.
const readsWithoutWaiting = false

func (s *tlsSocket) readNoWait([]byte) (int, error) { return 0, errNothingBuffered }
