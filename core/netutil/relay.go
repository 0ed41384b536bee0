package netutil

import (
	"context"
	"io"
	"sync"
)

// closeWriter is a connection with a half-close: *net.TCPConn, *tls.Conn,
// an SSH channel, a core.Stream.
type closeWriter interface {
	CloseWrite() error
}

// Relay copies between a and b until both directions ended, passing each
// clean end on as a half-close (CloseWrite) where the receiving side has
// one, else closing that side; then it closes both. A failed direction
// closes both at once, and so does ctx ending. Relay returns when both
// copies have returned; it owns a and b from the call on.
func Relay(ctx context.Context, a, b io.ReadWriteCloser) {
	stop := context.AfterFunc(ctx, func() {
		_ = a.Close()
		_ = b.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(a, b) })
	copyHalf(b, a)
	wg.Wait()
	_ = a.Close()
	_ = b.Close()
}

// copyHalf copies src to dst. At src's clean end it half-closes dst, or
// closes it when it cannot; on an error it closes both.
func copyHalf(dst, src io.ReadWriteCloser) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
			return
		}
		_ = dst.Close()
		return
	}
	_ = dst.Close()
	_ = src.Close()
}
