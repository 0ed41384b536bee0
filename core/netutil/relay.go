package netutil

import (
	"context"
	"io"
	"net"
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
	if err := copyBuffered(dst, src); err == nil {
		if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
			return
		}
		_ = dst.Close()
		return
	}
	_ = dst.Close()
	_ = src.Close()
}

const (
	// relayBuf is the buffer each direction of a relay holds for its life.
	relayBuf = 32 << 10
	// relayBulkBuf is the buffer a direction borrows while it moves bulk
	// data.
	relayBulkBuf = 256 << 10
	// relayBulkBufs bounds the bulk buffers out at once (8 MiB): past
	// it, a direction goes on with its own.
	relayBulkBufs = 32
)

// bulkBufs lends the relays' bulk buffers.
var bulkBufs = NewLender(relayBulkBuf, relayBulkBufs)

// copyBuffered copies src to dst until src ends (nil) or either side fails,
// as io.Copy does between two streams. It reads into 32 KiB of its own;
// after a read fills that, into 256 KiB borrowed from bulkBufs, until a
// read brings back less than 32 KiB. A bulk transfer then moves in reads
// and writes eight times as large, so the process at either end is woken
// an eighth as often (for a TLS stream, many records go out in one
// write), while an idle or interactive connection keeps holding 32 KiB: a
// direction holds the larger buffer only while blocked right after a full
// read, and no more than relayBulkBufs are out at once.
//
// Between two TCP connections io.Copy is used instead: the kernel moves
// the bytes (splice) without a buffer here.
func copyBuffered(dst io.Writer, src io.Reader) error {
	if _, ok := src.(*net.TCPConn); ok {
		if _, ok := dst.(*net.TCPConn); ok {
			_, err := io.Copy(dst, src)
			return err
		}
	}
	own := make([]byte, relayBuf)
	buf := own
	var bulk *[]byte
	defer func() {
		if bulk != nil {
			bulkBufs.Return(bulk)
		}
	}()
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			if werr != nil {
				return werr
			}
			if m < n {
				return io.ErrShortWrite
			}
		}
		if rerr != nil {
			if rerr == io.EOF {
				return nil
			}
			return rerr
		}
		switch {
		case bulk == nil && n == len(own):
			if bulk = bulkBufs.Borrow(); bulk != nil {
				buf = (*bulk)[:relayBulkBuf]
			}
		case bulk != nil && n < relayBuf:
			bulkBufs.Return(bulk)
			bulk = nil
			buf = own
		}
	}
}
