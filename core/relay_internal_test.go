package core

import "testing"

// FuzzRelayHeader checks that no header frame body makes the decoders
// panic, and that what decodes passes its own checks again.
func FuzzRelayHeader(f *testing.F) {
	for _, seed := range []string{
		`{"op":"listen"}`, // a worker's registration
		`{"op":"connect","node":"k5ydt4kqowrs5kpyc6bdd5b5jzsxdgwbj1gbqb1oxqnnk9jxkoco","alpn":"alknet/ssh"}`, // a client's
		`{"op":"accept","alpn":"alknet/ssh","from":"192.0.2.1:4433","client":""}`,                            // the head's
		`{"ok":true}`, `{"error":"no-node","reason":"no such node attached to this head"}`, // replies
		`{"op":"punch"}`, `{}`, `[]`, `{"op":"listen"}{}`, "\x00", `{"op":"accept","alpn":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRelayRequest(b); err == nil {
			if r.Op == "" {
				t.Fatalf("decoded %q with no op", b)
			}
		}
		if r, err := decodeRelayReply(b); err == nil && r.OK == (r.Error != "") {
			t.Fatalf("decoded %q as both or neither ok and error", b)
		}
	})
}
