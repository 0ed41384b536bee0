package dns

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/quic-go/quic-go"

	"github.com/alkdev/alknet/core"
	"github.com/alkdev/alknet/core/coretest"
)

// startNode serves s on a loopback endpoint that routes ALPN-less TCP+TLS
// clients to dot.
func startNode(t *testing.T, s *Server) *coretest.Node {
	t.Helper()
	return coretest.Start(t, core.Config{NoALPN: ALPNDoT}, s)
}

// doqExchange sends one query on a fresh stream of conn, closing the
// sending side after it, and reads the answer.
func doqExchange(t *testing.T, conn core.Conn, msg []byte) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := st.Write(appendFrame(nil, msg)); err != nil {
		return nil, err
	}
	_ = st.CloseWrite()
	return readFrame(st, minMessageBytes, nil)
}

func packQuery(t testing.TB, name string, qtype uint16) []byte {
	t.Helper()
	b, err := query(name, qtype).Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDoQ(t *testing.T) {
	s := testServer(t, nil)
	n := startNode(t, s)
	for _, alpn := range []string{ALPNDoQ, ALPN} {
		t.Run(alpn, func(t *testing.T) {
			conn := n.Dial(t, core.NetworkQUIC, nil, alpn)
			out, err := doqExchange(t, conn, packQuery(t, "www.example.org.", mdns.TypeA))
			if err != nil {
				t.Fatal(err)
			}
			var resp mdns.Msg
			if err := resp.Unpack(out); err != nil {
				t.Fatal(err)
			}
			if resp.Id != 0 || !resp.Authoritative || len(resp.Answer) != 1 {
				t.Errorf("got %v", &resp)
			}
		})
	}
}

func TestDoQProtocolErrors(t *testing.T) {
	s := testServer(t, func(c *Config) { c.IdleTimeout = time.Second })
	n := startNode(t, s)
	nonzero := packQuery(t, "www.example.org.", mdns.TypeA)
	binary.BigEndian.PutUint16(nonzero, 7)
	keepalive := query("www.example.org.", mdns.TypeA)
	keepalive.SetEdns0(1232, false)
	keepalive.IsEdns0().Option = append(keepalive.IsEdns0().Option, &mdns.EDNS0_TCP_KEEPALIVE{Code: mdns.EDNS0TCPKEEPALIVE})
	kb, err := keepalive.Pack()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		write []byte
		fin   bool
	}{
		{"message ID not 0", appendFrame(nil, nonzero), true},
		{"edns-tcp-keepalive", appendFrame(nil, kb), true},
		{"zero length", []byte{0, 0}, true},
		{"end inside the message", []byte{0, 40, 1, 2, 3}, true},
		{"data after the query", append(appendFrame(nil, packQuery(t, "www.example.org.", mdns.TypeA)), 9), true},
		{"unknown request kind", appendFrame(nil, append([]byte("ZZ"), make([]byte, 20)...)), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := n.Dial(t, core.NetworkQUIC, nil, ALPN)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := conn.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_ = st.SetDeadline(time.Now().Add(10 * time.Second))
			_, _ = st.Write(tc.write)
			if tc.fin {
				_ = st.CloseWrite()
			}
			_, err = io.ReadAll(st)
			var se *quic.StreamError
			var ae *quic.ApplicationError
			switch {
			case errors.As(err, &ae):
				if ae.ErrorCode != quic.ApplicationErrorCode(DoQProtocolError) {
					t.Errorf("connection closed with 0x%x, want DOQ_PROTOCOL_ERROR", ae.ErrorCode)
				}
			case errors.As(err, &se):
				if se.ErrorCode != quic.StreamErrorCode(DoQProtocolError) {
					t.Errorf("stream reset with 0x%x, want DOQ_PROTOCOL_ERROR", se.ErrorCode)
				}
			default:
				t.Fatalf("read ended with %v, want a DoQ protocol error", err)
			}
			<-conn.Context().Done()
			var cause *quic.ApplicationError
			if !errors.As(context.Cause(conn.Context()), &cause) || cause.ErrorCode != quic.ApplicationErrorCode(DoQProtocolError) {
				t.Errorf("connection ended with %v, want DOQ_PROTOCOL_ERROR", context.Cause(conn.Context()))
			}
		})
	}
}

// dotConn dials TCP+TLS with the given ALPN list (nil: none offered).
func dotConn(t *testing.T, n *coretest.Node, alpn []string) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", n.HostPort, &tls.Config{
		InsecureSkipVerify: true, // DoT opportunistic profile, as kdig +tls
		NextProtos:         alpn,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestDoTPipelined(t *testing.T) {
	s := testServer(t, nil)
	n := startNode(t, s)
	for _, tc := range []struct {
		name string
		alpn []string
	}{{"ALPN dot", []string{ALPNDoT}}, {"no ALPN", nil}} {
		t.Run(tc.name, func(t *testing.T) {
			c := dotConn(t, n, tc.alpn)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			names := []string{"www.example.org.", "mail.example.org.", "nope.example.org.", "ns1.example.org."}
			var buf []byte
			for i, name := range names {
				q := query(name, mdns.TypeA)
				q.Id = uint16(100 + i)
				b, _ := q.Pack()
				buf = appendFrame(buf, b)
			}
			if _, err := c.Write(buf); err != nil {
				t.Fatal(err)
			}
			got := map[uint16]*mdns.Msg{}
			for range names {
				b, err := readFrame(c, minMessageBytes, nil)
				if err != nil {
					t.Fatal(err)
				}
				m := new(mdns.Msg)
				if err := m.Unpack(b); err != nil {
					t.Fatal(err)
				}
				got[m.Id] = m
			}
			for i, name := range names {
				m := got[uint16(100+i)]
				if m == nil || m.Question[0].Name != name {
					t.Errorf("no answer for %s (id %d)", name, 100+i)
				}
			}
			if got[102].Rcode != mdns.RcodeNameError {
				t.Errorf("nope: rcode %s", mdns.RcodeToString[got[102].Rcode])
			}
			_ = c.CloseWrite()
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("after the client's end: %v, want EOF", err)
			}
		})
	}
}

func TestClassic(t *testing.T) {
	s := testServer(t, nil)
	cl := startClassic(t, s)
	for _, netw := range []string{"udp", "tcp"} {
		c := &mdns.Client{Net: netw, Timeout: 5 * time.Second}
		resp, _, err := c.Exchange(query("big.example.org.", mdns.TypeTXT), cl.Addr().String())
		if err != nil {
			t.Fatalf("%s: %v", netw, err)
		}
		if wantTC := netw == "udp"; resp.Truncated != wantTC {
			t.Errorf("%s: TC %v, want %v", netw, resp.Truncated, wantTC)
		}
	}
}

// startClassic serves s's classic listener on loopback until the test ends.
func startClassic(t *testing.T, s *Server) *Classic {
	t.Helper()
	cl, err := s.ListenClassic("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	})
	return cl
}
