package netutil

import (
	"io"
	"testing"
	"time"
)

// TestLingerKeepsAnswer: a server that answers and closes while the
// client's input sits unread resets the connection, and the client loses
// the end of the answer; lingering first delivers all of it.
func TestLingerKeepsAnswer(t *testing.T) {
	const size = 32 << 10 // fits the socket buffers: Write returns unread
	for _, tc := range []struct {
		name   string
		linger bool
		want   bool // the client reads the whole answer
	}{
		{"linger", true, true},
		{"plain close", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, server := tcpPair(t)
			// The client's request and half-close arrive; the server never
			// reads them.
			if _, err := client.Write([]byte("unread")); err != nil {
				t.Fatal(err)
			}
			client.CloseWrite()
			served := make(chan struct{})
			go func() {
				defer close(served)
				_, _ = server.Write(make([]byte, size))
				if tc.linger {
					Linger(server, 2*time.Second, 64<<10)
				}
				server.Close()
			}()
			<-served // the answer is written and the server closed, not read yet
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(client)
			if ok := len(got) == size && err == nil; ok != tc.want {
				t.Errorf("read %d bytes, err %v; want all %d: %v", len(got), err, size, tc.want)
			}
		})
	}
}

// TestLingerBounded: a peer that keeps sending holds Linger for at most
// its time.
func TestLingerBounded(t *testing.T) {
	client, server := tcpPair(t)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		buf := make([]byte, 1024)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := client.Write(buf); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	Linger(server, 200*time.Millisecond, 1<<40)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Linger took %v, want about 200ms", d)
	}
	server.Close()
}
