package netutil

import (
	"context"
	"net"
	"strconv"
	"testing"
)

// TestListenSamePort: port 0 binds UDP and TCP on one free port; a given
// port whose TCP side is taken is an error, and leaves no UDP socket.
func TestListenSamePort(t *testing.T) {
	udp, tcp, err := ListenSamePort(context.Background(), nil, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up, tp := udp.LocalAddr().(*net.UDPAddr).Port, tcp.Addr().(*net.TCPAddr).Port
	if up != tp || up == 0 {
		t.Errorf("udp port %d, tcp port %d; want one free port", up, tp)
	}
	udp.Close()

	// tcp's port is taken on TCP only.
	addr := "127.0.0.1:" + strconv.Itoa(tp)
	if u, l, err := ListenSamePort(context.Background(), nil, addr); err == nil {
		u.Close()
		l.Close()
		t.Fatalf("ListenSamePort(%s) with TCP taken succeeded", addr)
	}
	tcp.Close()
	// The failed try left the UDP port free.
	u, l, err := ListenSamePort(context.Background(), nil, addr)
	if err != nil {
		t.Fatalf("ListenSamePort(%s) once free: %v", addr, err)
	}
	u.Close()
	l.Close()

	for _, bad := range []string{"127.0.0.1", "256.0.0.1:0"} {
		if u, l, err := ListenSamePort(context.Background(), nil, bad); err == nil {
			u.Close()
			l.Close()
			t.Errorf("ListenSamePort(%q) succeeded", bad)
		}
	}
}
