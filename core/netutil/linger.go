package netutil

import (
	"io"
	"net"
	"time"
)

// Linger ends c gently: it half-closes c (the peer reads EOF after what was
// written), then reads and drops what the peer still sends, up to max
// bytes or until d has passed or the peer's end. Closing a TCP connection
// with input unread makes the kernel answer with a reset, which destroys
// what the peer has not read yet of the last reply; lingering first lets
// the reply arrive. Linger does not close c; it returns at once when c has
// no half-close or it fails.
func Linger(c net.Conn, d time.Duration, max int64) {
	cw, ok := c.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, max))
}
