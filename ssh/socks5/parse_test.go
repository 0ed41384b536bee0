package socks5

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestReadRequest(t *testing.T) {
	domain := func(name string) []byte {
		return append(append([]byte{version5, cmdConnect, 0, atypDomain, byte(len(name))}, name...), 0x01, 0xbb)
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		want  request
		reply Reply // of a *replyError; 0 with wantErr: closed unanswered
		err   bool
	}{
		{"ipv4", []byte{5, 1, 0, 1, 192, 0, 2, 7, 0, 80}, request{cmdConnect, "192.0.2.7", 80}, 0, false},
		{"ipv6", append(append([]byte{5, 1, 0, 4}, bytes.Repeat([]byte{0}, 15)...), 1, 0x1f, 0x90), request{cmdConnect, "::1", 8080}, 0, false},
		{"domain", domain("example.org"), request{cmdConnect, "example.org", 443}, 0, false},
		{"ipv4 sent as a name", domain("127.0.0.1"), request{cmdConnect, "127.0.0.1", 443}, 0, false},
		{"ipv6 sent as a name", domain("::1"), request{cmdConnect, "::1", 443}, 0, false},
		{"bind parsed for the caller to refuse", []byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0}, request{cmdBind, "0.0.0.0", 0}, 0, false},
		{"empty name", domain(""), request{}, HostUnreachable, true},
		{"name with a colon", domain("a:b"), request{}, HostUnreachable, true},
		{"name with a zone", domain("fe80::1%eth0"), request{}, HostUnreachable, true},
		{"name with a NUL", domain("a\x00b"), request{}, HostUnreachable, true},
		{"unknown address type", []byte{5, 1, 0, 9, 1, 2}, request{}, AddressTypeNotSupported, true},
		{"version 4", []byte{4, 1, 0, 1, 1, 2, 3, 4, 0, 80}, request{}, 0, true},
		{"truncated address", []byte{5, 1, 0, 1, 1, 2}, request{}, 0, true},
		{"truncated port", []byte{5, 1, 0, 1, 1, 2, 3, 4, 0}, request{}, 0, true},
		{"truncated name", []byte{5, 1, 0, 3, 10, 'a'}, request{}, 0, true},
		{"empty", nil, request{}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readRequest(bytes.NewReader(tc.in))
			if tc.err {
				re, isReply := errors.AsType[*replyError](err)
				switch {
				case err == nil:
					t.Fatalf("% x: parsed as %+v, want an error", tc.in, got)
				case tc.reply == 0 && isReply:
					t.Fatalf("% x: reply %v, want none", tc.in, re.reply)
				case tc.reply != 0 && (!isReply || re.reply != tc.reply):
					t.Fatalf("% x: %v, want reply %v", tc.in, err, tc.reply)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("% x: %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestAppendReply(t *testing.T) {
	if got, want := appendReply(nil, Succeeded, netipMust("[2001:db8::1]:443")), append(append([]byte{5, 0, 0, 4}, netipMust("[2001:db8::1]:443").Addr().AsSlice()...), 1, 0xbb); !bytes.Equal(got, want) {
		t.Errorf("ipv6 reply % x, want % x", got, want)
	}
	if got, want := appendReply(nil, NotAllowed, netipMust("[::ffff:10.0.0.1]:1")), []byte{5, 2, 0, 1, 10, 0, 0, 1, 0, 1}; !bytes.Equal(got, want) {
		t.Errorf("mapped reply % x, want % x", got, want)
	}
	if NotAllowed.String() != "connection not allowed by ruleset" || Reply(0x42).String() != "reply 0x42" {
		t.Errorf("names: %v, %v", NotAllowed, Reply(0x42))
	}
}

// FuzzReadRequest: no input panics or hangs, and every request parsed
// re-encodes to one that parses the same.
func FuzzReadRequest(f *testing.F) {
	f.Add([]byte{5, 1, 0, 1, 127, 0, 0, 1, 0, 80})                                   // CONNECT 127.0.0.1:80
	f.Add(append(append([]byte{5, 1, 0, 4}, make([]byte, 15)...), 1, 0, 22))         // CONNECT [::1]:22
	f.Add([]byte{5, 1, 0, 3, 9, 'l', 'o', 'c', 'a', 'l', 'h', 'o', 's', 't', 0, 80}) // CONNECT localhost:80
	f.Add([]byte{5, 2, 0, 1, 0, 0, 0, 0, 0, 0})                                      // BIND
	f.Add([]byte{5, 3, 0, 1, 0, 0, 0, 0, 0, 0})                                      // UDP ASSOCIATE
	f.Add([]byte{5, 1, 0, 3, 0, 0, 80})                                              // empty name
	f.Add([]byte{5, 1, 0, 3, 255})                                                   // name longer than the input
	f.Add([]byte{5, 1, 0, 8})                                                        // unknown address type
	f.Add([]byte{4, 1, 0, 80, 127, 0, 0, 1, 0})                                      // SOCKS4
	f.Add([]byte{})                                                                  // nothing
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := readRequest(bytes.NewReader(in))
		if err != nil {
			return
		}
		again, err := readRequest(bytes.NewReader(encodeRequest(req.cmd, req.host, req.port)))
		if err != nil || again != req {
			t.Fatalf("%+v re-encoded parses as %+v, %v", req, again, err)
		}
	})
}

// FuzzReadGreeting: no input panics, and the methods returned are the
// count announced.
func FuzzReadGreeting(f *testing.F) {
	f.Add([]byte{5, 1, 0})      // no-auth
	f.Add([]byte{5, 2, 0, 2})   // no-auth, user/password
	f.Add([]byte{5, 0})         // no methods
	f.Add([]byte{5, 3, 0})      // fewer methods than announced
	f.Add([]byte{4, 1, 0, 80})  // SOCKS4
	f.Add([]byte{5, 255, 0, 1}) // 255 announced
	f.Fuzz(func(t *testing.T, in []byte) {
		methods, err := readGreeting(bytes.NewReader(in))
		if err == nil && (len(methods) == 0 || len(methods) != int(in[1])) {
			t.Fatalf("% x: methods % x", in, methods)
		}
	})
}

// FuzzReadUserPass: no input panics, and what parses has the announced
// lengths.
func FuzzReadUserPass(f *testing.F) {
	f.Add([]byte{1, 2, 'm', 'e', 2, 'p', 'w'}) // me/pw
	f.Add([]byte{1, 0, 0})                     // empty both
	f.Add([]byte{1, 5, 'a'})                   // truncated user
	f.Add([]byte{2, 0, 0})                     // wrong version
	f.Fuzz(func(t *testing.T, in []byte) {
		user, pass, err := readUserPass(bytes.NewReader(in))
		if err == nil && 3+len(user)+len(pass) > len(in) {
			t.Fatalf("% x: parsed %q/%q beyond the input", in, user, pass)
		}
	})
}

func netipMust(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
